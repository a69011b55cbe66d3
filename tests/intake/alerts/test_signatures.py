from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.intake.alerts.signatures import verify_grafana
from tests.intake.alerts.payloads import raw

# Reference values from `openssl dgst -sha256 -hmac secret`:
#   printf 'test message'            → 3bcebf43…
#   printf '1700000000:test message' → 36fa366a…
BODY_ONLY = "3bcebf43c85d20bba6e3b6ba278af1d2ba3ab0d57de271b0ad30b833e851c5a6"
WITH_TIMESTAMP = "36fa366a807205a13fc507ea4413374566ad5808c7ca7653f94d121fe5e64c2d"


def test_body_signature() -> None:
    assert verify_grafana(b"test message", "secret", BODY_ONLY, None)
    assert verify_grafana(b"test message", "secret", f" {BODY_ONLY.upper()}\n", None)
    assert not verify_grafana(b"test message!", "secret", BODY_ONLY, None)
    assert not verify_grafana(b"test message", "other", BODY_ONLY, None)
    assert not verify_grafana(b"test message", "", BODY_ONLY, None)
    assert not verify_grafana(b"test message", "secret", f"sha256={BODY_ONLY}", None)
    assert not verify_grafana(b"test message", "secret", "", None)
    assert not verify_grafana(b"test message", "secret", "é" * 64, None)


def test_timestamped_signature() -> None:
    assert verify_grafana(b"test message", "secret", WITH_TIMESTAMP, "1700000000")
    # A timestamp header is configured: the body-only signature is not enough.
    assert not verify_grafana(b"test message", "secret", BODY_ONLY, "1700000000")
    assert not verify_grafana(b"test message", "secret", WITH_TIMESTAMP, "1700000001")
    assert not verify_grafana(b"test message", "secret", WITH_TIMESTAMP, None)
    assert not verify_grafana(b"test message", "secret", WITH_TIMESTAMP, "")
    assert not verify_grafana(b"test message", "secret", WITH_TIMESTAMP, "1.7e9")


def test_replay_window() -> None:
    sent = datetime.fromtimestamp(1_700_000_000, tz=UTC)
    args = (b"test message", "secret", WITH_TIMESTAMP, "1700000000")
    assert verify_grafana(*args, now=sent + timedelta(minutes=4))
    assert verify_grafana(*args, now=(sent - timedelta(minutes=4)).replace(tzinfo=None))
    assert not verify_grafana(*args, now=sent + timedelta(minutes=6))
    assert not verify_grafana(*args, now=sent, tolerance=timedelta(seconds=-1))
    assert not verify_grafana(
        b"x", "secret", WITH_TIMESTAMP, "999999999999", now=sent
    )  # far-future timestamp


def test_real_wire_body_round_trip() -> None:
    import hashlib
    import hmac

    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    signature = hmac.new(b"s3cret", b"1724495670:" + body, hashlib.sha256).hexdigest()
    assert verify_grafana(body, "s3cret", signature, "1724495670")
    assert not verify_grafana(body.rstrip(b"\n"), "s3cret", signature, "1724495670")


def test_refusal_reasons() -> None:
    from bot.intake.alerts.signatures import REPLAY_WINDOW, grafana_refusal

    sent = datetime.fromtimestamp(1_700_000_000, tz=UTC)
    body, stamp = b"test message", "1700000000"
    assert timedelta(minutes=5) == REPLAY_WINDOW  # as Slack's
    assert grafana_refusal(body, ["old", "secret"], WITH_TIMESTAMP, stamp, now=sent) is None
    assert grafana_refusal(body, ["secret"], BODY_ONLY, None, now=sent) is None
    assert grafana_refusal(body, ["secret"], "", stamp, now=sent) == "missing signature"
    assert grafana_refusal(body, ["secret"], "zz", stamp, now=sent) == (
        "signature is not a hex HMAC-SHA256"
    )
    assert grafana_refusal(body, ["other"], WITH_TIMESTAMP, stamp, now=sent) == (
        "signature does not match"
    )
    assert grafana_refusal(body, ["secret"], WITH_TIMESTAMP, "1.7e9", now=sent) == (
        "signature timestamp is not Unix seconds"
    )
    day_later = sent + timedelta(days=1)
    assert grafana_refusal(body, ["secret"], WITH_TIMESTAMP, stamp, now=day_later) == (
        "signature timestamp is more than 300 s from now (replayed or clock skew)"
    )
    assert (
        grafana_refusal(
            body, ["secret"], WITH_TIMESTAMP, stamp, now=day_later, tolerance=timedelta(days=2)
        )
        is None
    )
    early = sent - timedelta(minutes=6)  # a timestamp from the future is refused as well
    assert grafana_refusal(body, ["secret"], WITH_TIMESTAMP, stamp, now=early) is not None
    assert grafana_refusal(body, ["secret"], WITH_TIMESTAMP, "999999999999", now=sent) is not None
