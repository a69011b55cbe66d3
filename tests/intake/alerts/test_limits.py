"""Identities longer than the store keeps stay distinct and stable (the model's limits)."""

from __future__ import annotations

from dataclasses import replace

from bot.intake.alerts.events import parse as parse_events
from bot.intake.alerts.model import (
    FINGERPRINT_MAX,
    GROUP_KEY_MAX,
    SEVERITY_HINT_MAX,
    AlertStatus,
    Delivery,
    NormalizedAlert,
    fit_key,
)


def test_short_keys_are_unchanged_long_ones_keep_their_start_and_stay_distinct() -> None:
    assert fit_key("abc", 10) == "abc"
    a, b = fit_key("x" * 300 + "a", 200), fit_key("x" * 300 + "b", 200)
    assert len(a) == len(b) == 200
    assert a != b
    assert a.startswith("x" * 100)
    assert fit_key("x" * 300 + "a", 200) == a
    assert fit_key("\ud800" * 300, 200)  # never raises, even on text that is not UTF-8


def test_a_pagerduty_dedup_key_of_255_characters_is_one_alert() -> None:
    """PagerDuty allows 255 characters; the store keeps 200: both deliveries are one alert."""
    body = {
        "event_action": "trigger",
        "dedup_key": "k" * 255,
        "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
    }
    first, again = parse_events(body), parse_events(dict(body))
    assert len(first.alerts[0].fingerprint) == FINGERPRINT_MAX
    assert first.alerts[0].fingerprint == again.alerts[0].fingerprint
    other = parse_events({**body, "dedup_key": "k" * 254 + "z"})
    assert other.alerts[0].fingerprint != first.alerts[0].fingerprint


def test_group_key_and_severity_hint_fit() -> None:
    alert = NormalizedAlert(
        source="x",
        fingerprint="f",
        status=AlertStatus.FIRING,
        labels={},
        annotations={},
        summary="s",
        group_key="g" * 1_000,
        severity_hint="s" * 100,
    )
    assert len(alert.group_key or "") == GROUP_KEY_MAX
    assert alert.severity_hint == "s" * SEVERITY_HINT_MAX
    assert replace(alert, summary="t").group_key == alert.group_key  # fitting is idempotent
    delivery = Delivery(source="x", alerts=(alert,), group_key="g" * 1_000)
    assert delivery.group_key == alert.group_key
