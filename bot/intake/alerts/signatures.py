"""Webhook signatures that are not tied to one parser module.

PagerDuty's ``X-PagerDuty-Signature`` lives with its parser
(``bot.intake.alerts.pagerduty.verify_signature``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
"""The header name Grafana's contact point form suggests; the name is configurable."""

REPLAY_WINDOW = timedelta(minutes=5)
"""A signed timestamp further than this from now is refused (Slack's window too)."""

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_UNIX_SECONDS = re.compile(r"\d{1,12}", re.ASCII)


def verify_grafana(
    raw: bytes,
    secret: str,
    signature_header: str,
    timestamp_header: str | None,
    *,
    now: datetime | None = None,
    tolerance: timedelta = REPLAY_WINDOW,
) -> bool:
    """Whether a Grafana webhook's HMAC signature matches ``raw``.

    Grafana (the webhook contact point's "HMAC signature" settings) sends the
    lower-case hex HMAC-SHA256 of the body keyed with ``secret``; when a
    timestamp header is configured it sets that header to the Unix time in
    seconds and signs ``"<timestamp>:" + body`` instead.  Pass the timestamp
    header's *value* as ``timestamp_header`` (``None`` when none is
    configured).  With ``now`` given, a timestamp further than ``tolerance``
    from it is rejected too (replay protection).  The comparison is
    constant-time; an empty secret never verifies.
    """
    if not secret:
        return False
    signature = signature_header.strip().lower()
    if not _HEX_SHA256.fullmatch(signature):
        return False
    message = raw
    if timestamp_header is not None:
        timestamp = timestamp_header.strip()
        if not _UNIX_SECONDS.fullmatch(timestamp):
            return False
        if now is not None:
            if now.tzinfo is None:
                now = now.replace(tzinfo=UTC)
            try:
                sent = datetime.fromtimestamp(int(timestamp), tz=UTC)
            except (ValueError, OverflowError, OSError):
                return False
            if abs(now - sent) > tolerance:
                return False
        message = timestamp.encode("ascii") + b":" + raw
    expected = hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest().encode("ascii"), signature.encode("ascii"))


def grafana_refusal(
    raw: bytes,
    secrets: Sequence[str],
    signature_header: str,
    timestamp_header: str | None,
    *,
    now: datetime,
    tolerance: timedelta = REPLAY_WINDOW,
) -> str | None:
    """Why a Grafana webhook is refused (``None``: one of ``secrets`` signed it, in time).

    ``signature_header`` and ``timestamp_header`` are the headers' values (``None``: no
    timestamp header is configured).  A timestamped signature must also be within
    ``tolerance`` of ``now``, so a captured delivery cannot be replayed later.  The
    reasons name no secret and nothing of the expected signature.
    """
    if not signature_header.strip():
        return "missing signature"
    if not _HEX_SHA256.fullmatch(signature_header.strip().lower()):
        return "signature is not a hex HMAC-SHA256"
    if timestamp_header is not None:
        stamp = timestamp_header.strip()
        if not _UNIX_SECONDS.fullmatch(stamp):
            return "signature timestamp is not Unix seconds"
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        try:
            sent = datetime.fromtimestamp(int(stamp), tz=UTC)
        except (ValueError, OverflowError, OSError):
            return "signature timestamp is out of range"
        if abs(now - sent) > tolerance:
            seconds = int(tolerance.total_seconds())
            return f"signature timestamp is more than {seconds} s from now (replayed or clock skew)"
    if not any(verify_grafana(raw, s, signature_header, timestamp_header) for s in secrets):
        return "signature does not match"
    return None
