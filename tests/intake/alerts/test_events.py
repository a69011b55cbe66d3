from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.intake.alerts import events
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.fingerprint import label_fingerprint
from bot.intake.alerts.model import AlertStatus
from tests.intake.alerts.payloads import load, load_obj

TRIGGER = "pagerduty_events_v2/pagerduty_events_api_v2_trigger_doc_example.json"
ACKNOWLEDGE = "pagerduty_events_v2/pagerduty_events_api_v2_acknowledge_doc_example.json"
RESOLVE = "pagerduty_events_v2/pagerduty_events_api_v2_resolve_doc_example.json"

SOURCE = "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003"


def test_trigger_doc_example() -> None:
    delivery = events.parse(load(TRIGGER))

    assert delivery.source == "events"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.group_key is None
    assert delivery.extra["action"] == "trigger"
    assert delivery.extra["routing_key"] == "samplekeyhere"
    assert delivery.extra["client"] == "Sample Monitoring Service"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "samplekeyhere"  # dedup_key
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "Example alert on host1.example.com"
    assert alert.severity_hint == "info"
    assert alert.labels == {
        "source": SOURCE,
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "deploy",
        "severity": "info",
    }
    assert alert.annotations == {"ping time": "1500ms", "load avg": "0.75"}
    # "+0000" offset without a colon
    assert alert.starts_at == datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)
    assert alert.links == {
        "client": "https://monitoring.example.com",
        "Link text": "https://example.com/",
        "image": "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png",
    }


def test_acknowledge_is_firing_with_action() -> None:
    delivery = events.parse(load(ACKNOWLEDGE))
    assert delivery.extra["action"] == "acknowledge"
    assert delivery.extra["routing_key"] == "routingkeyhere"
    assert delivery.status is AlertStatus.FIRING
    (alert,) = delivery.alerts
    assert alert.fingerprint == "dedupkeyhere"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "dedupkeyhere"
    assert alert.labels == {}
    assert alert.severity_hint is None


def test_resolve_is_resolved() -> None:
    delivery = events.parse(load(RESOLVE))
    assert delivery.extra["action"] == "resolve"
    assert delivery.status is AlertStatus.RESOLVED
    (alert,) = delivery.alerts
    assert alert.fingerprint == "dedupkeyhere"
    assert alert.status is AlertStatus.RESOLVED


def test_trigger_without_dedup_key_hashes_routing_key_summary_source() -> None:
    body = load_obj(TRIGGER)
    del body["dedup_key"]
    first = events.parse(body).alerts[0]
    assert first.fingerprint == label_fingerprint(
        {
            "routing_key": "samplekeyhere",
            "summary": "Example alert on host1.example.com",
            "source": SOURCE,
        }
    )
    again = events.parse(load_obj(TRIGGER) | {"dedup_key": None}).alerts[0]
    assert again.fingerprint == first.fingerprint
    other = load_obj(TRIGGER)
    del other["dedup_key"]
    other["payload"]["source"] = "elsewhere"  # type: ignore[index]
    assert events.parse(other).alerts[0].fingerprint != first.fingerprint


def test_duplicate_link_texts_and_odd_custom_details() -> None:
    body = load_obj(TRIGGER) | {
        "links": [{"href": "https://a/"}, {"href": "https://b/", "text": ""}],
    }
    body["payload"]["custom_details"] = ["free", "form"]  # type: ignore[index]
    alert = events.parse(body).alerts[0]
    assert alert.links["link"] == "https://a/"
    assert alert.links["link (2)"] == "https://b/"
    assert alert.annotations == {"custom_details": '["free","form"]'}

    body["payload"]["custom_details"] = "plain text"  # type: ignore[index]
    assert events.parse(body).alerts[0].annotations == {"custom_details": "plain text"}


def _mutated(path: list[Any], value: object) -> dict[str, Any]:
    body = load_obj(TRIGGER)
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["event_action"], _DELETE, "event_action"),
        (["event_action"], "fire", "event_action"),
        (["event_action"], 1, "event_action"),
        (["payload"], _DELETE, "payload"),
        (["payload"], "text", "payload"),
        (["payload", "summary"], _DELETE, "payload.summary"),
        (["payload", "summary"], "", "payload.summary"),
        (["payload", "source"], _DELETE, "payload.source"),
        (["payload", "severity"], "high", "payload.severity"),
        (["payload", "severity"], _DELETE, "payload.severity"),
        (["payload", "timestamp"], "last tuesday", "payload.timestamp"),
        (["payload", "component"], 5, "payload.component"),
        (["links"], {"href": "x"}, "links"),
        (["links", 0], "https://x", "links[0]"),
        (["links", 0, "href"], _DELETE, "links[0].href"),
        (["images", 0, "src"], 1, "images[0].src"),
        (["dedup_key"], 5, "dedup_key"),
        (["routing_key"], [], "routing_key"),
    ],
)
def test_malformed_bodies_name_the_field(path: list[Any], value: object, field: str) -> None:
    with pytest.raises(PayloadError) as exc:
        events.parse(_mutated(path, value))
    assert exc.value.field == field


@pytest.mark.parametrize("name", [ACKNOWLEDGE, RESOLVE])
def test_ack_and_resolve_need_a_dedup_key(name: str) -> None:
    body = load_obj(name)
    del body["dedup_key"]
    with pytest.raises(PayloadError) as exc:
        events.parse(body)
    assert exc.value.field == "dedup_key"
