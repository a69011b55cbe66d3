"""Every real body in the vendored payloads folder is known to (and read by) these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.model import Delivery
from bot.intake.alerts.registry import PARSERS
from tests.intake.alerts import payloads
from tests.intake.alerts.payloads import KNOWN_BODIES, load, payload_dir, source_of

# Bodies that are not a delivery as sent: the Datadog default template still holds $VARIABLES.
TEMPLATES = {"datadog/default_payload_template.json"}


def test_every_vendored_body_is_covered() -> None:
    root = payload_dir()
    on_disk = {str(path.relative_to(root)) for path in root.rglob("*.json") if path.is_file()}
    assert on_disk == set(KNOWN_BODIES), (
        "payload folder changed: add new bodies to tests/alerts/payloads.py and assert them"
    )


@pytest.mark.parametrize("name", sorted(set(KNOWN_BODIES) - TEMPLATES))
def test_every_real_body_parses_with_its_source(name: str) -> None:
    delivery = PARSERS[source_of(name)](load(name))
    assert isinstance(delivery, Delivery)
    assert delivery.source == source_of(name)
    assert delivery.alerts
    for alert in delivery.alerts:
        assert alert.source == delivery.source
        assert alert.fingerprint
        assert alert.summary


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_an_unrendered_template_is_rejected(name: str) -> None:
    with pytest.raises(PayloadError):
        PARSERS[source_of(name)](load(name))


def test_missing_payload_folder_fails_rather_than_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(payloads, "PAYLOADS_DIR", tmp_path / "nowhere")
    payloads.payload_dir.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="real alert payloads not found"):
            payloads.payload_dir()
    finally:
        payloads.payload_dir.cache_clear()
