"""Stable alert identity from labels, and the one time parser every source uses."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from bot.intake.alerts.errors import PayloadError, json_type, show

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

# RFC 3339 (and the ISO 8601 forms senders really emit): a ``T``/``t``/space
# separator, any number of fraction digits (Go emits up to 9), and ``Z``, a
# ``±hh:mm`` or ``±hhmm`` offset, or none (taken as UTC).
_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:[.,](?P<fraction>\d+))?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_h>\d{2}):?(?P<off_m>\d{2}))?",
    re.ASCII,
)
_NUMERIC = re.compile(r"[+-]?\d+(?:\.\d+)?", re.ASCII)

# Epoch magnitudes: below 1e11 is seconds (until year 5138), below 1e14 is
# milliseconds, below 1e17 microseconds, else nanoseconds.
_EPOCH_SCALES: tuple[tuple[float, int], ...] = ((1e11, 1), (1e14, 1_000), (1e17, 1_000_000))
_NANOS = 1_000_000_000


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit identity for a label set (order does not matter).

    The labels are hashed as a sorted JSON array of ``[name, value]`` pairs, so
    no choice of names or values can make two different sets collide by
    concatenation.
    """
    pairs = sorted((str(name), str(value)) for name, value in labels.items())
    text = json.dumps(pairs, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def parse_time(value: object, field: str) -> datetime | None:
    """A sender's timestamp as an aware UTC ``datetime``, or ``None`` if absent.

    Accepts RFC 3339 / ISO 8601 strings (``Z`` or offsets, fractions of any
    length, truncated to microseconds), epoch seconds, milliseconds,
    microseconds or nanoseconds as numbers or numeric strings (Datadog sends
    ``"1448435530000"``).  ``null``, ``""`` and Go's zero time
    ``0001-01-01T00:00:00Z`` (Alertmanager's "no end yet") give ``None``.
    Anything else raises :class:`PayloadError` for ``field``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise PayloadError(field, f"expected a time, got {json_type(value)}: {show(value)}")
    if isinstance(value, int | float):
        return _from_epoch(value, field)
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a time, got {json_type(value)}: {show(value)}")
    text = value.strip()
    if not text:
        return None
    # Only short texts are cached: a hostile body's long strings must not fill the cache.
    found = _rfc3339_utc(text) if len(text) <= 64 else _rfc3339_utc.__wrapped__(text)
    if found is not False:  # RFC 3339 (a number has no ':', so it is never both)
        return found
    if _NUMERIC.fullmatch(text):
        number: int | float = float(text) if "." in text else int(text)
        return _from_epoch(number, field)
    raise PayloadError(field, f"not an RFC 3339 time: {show(value)}")


@functools.lru_cache(maxsize=4096)
def _rfc3339_utc(text: str) -> datetime | Literal[False] | None:
    """``text`` as an aware UTC time, ``None`` for Go's zero time, ``False`` if it is not
    RFC 3339. Cached: a storm's alerts share a handful of start times (and the zero end)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return False
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        if match["sign"]:
            offset = timedelta(hours=int(match["off_h"]), minutes=int(match["off_m"]))
            if offset >= timedelta(hours=24):
                raise ValueError("offset out of range")
            if match["sign"] == "-":
                offset = -offset
        else:
            offset = timedelta(0)
        naive = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction),
        )
        if naive == _GO_ZERO_TIME.replace(tzinfo=None) and not offset:
            return None
        utc = naive - offset
    except (ValueError, OverflowError):
        return False
    return utc.replace(tzinfo=UTC)


def _from_epoch(number: int | float, field: str) -> datetime:
    if isinstance(number, float) and not math.isfinite(number):
        raise PayloadError(field, f"not an epoch time: {show(number)}")
    if number < 0:
        raise PayloadError(field, f"negative epoch time: {show(number)}")
    divisor = _NANOS
    for limit, scale in _EPOCH_SCALES:
        if number < limit:
            divisor = scale
            break
    try:
        if isinstance(number, int):
            whole, rest = divmod(number, divisor)
            micros = rest * 1_000_000 // divisor
            return _EPOCH + timedelta(seconds=whole, microseconds=micros)
        return _EPOCH + timedelta(microseconds=int(number * 1_000_000 / divisor))
    except (OverflowError, ValueError):
        raise PayloadError(field, f"epoch time out of range: {show(number)}") from None
