from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.intake.alerts import pagerduty
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.model import AlertStatus
from tests.intake.alerts.payloads import load, load_obj, raw

TRIGGERED = "pagerduty/incident_triggered.json"
ACKNOWLEDGED = "pagerduty/incident_acknowledged.json"
RESOLVED = "pagerduty/incident_resolved.json"
SIGNED = "pagerduty/signed_priority_updated.raw.json"
SIGNATURE_TXT = "pagerduty/signed_priority_updated.signature.txt"


def test_incident_triggered() -> None:
    delivery = pagerduty.parse(load(TRIGGERED))

    assert delivery.source == "pagerduty"
    assert delivery.delivery_id == "01BZYIL05THJDFF2Y08X9SVMTU"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.is_ping is False
    assert delivery.group_key is None
    assert delivery.extra["event_type"] == "incident.triggered"
    assert delivery.extra["resource_type"] == "incident"
    assert delivery.extra["occurred_at"] == datetime(2021, 6, 4, 13, 35, 29, 781000, tzinfo=UTC)
    assert delivery.extra["agent"] == "PIG 208"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "PFQZPSY"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "Test Incident 3"
    assert alert.links == {"pagerduty": "https://pig208.pagerduty.com/incidents/PFQZPSY"}
    assert alert.severity_hint == "high"  # priority is null: urgency
    assert alert.labels == {"service": "pig208", "service_id": "PA2P440", "urgency": "high"}
    assert alert.annotations["incident_number"] == "9"
    assert alert.annotations["pagerduty_status"] == "triggered"
    assert alert.annotations["assignees"] == "PIG 208"
    assert alert.annotations["escalation_policy"] == "Default"
    assert alert.starts_at == datetime(2021, 6, 4, 13, 35, 29, 781000, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.group_key == "pagerduty-incident:PFQZPSY"


def test_incident_acknowledged_stays_firing() -> None:
    delivery = pagerduty.parse(load(ACKNOWLEDGED))
    assert delivery.extra["event_type"] == "incident.acknowledged"
    assert delivery.delivery_id == "01BZYK8N47N5JG55J1EEEHPEJI"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "PQ1K5C8"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "Test Incident"
    assert alert.annotations["pagerduty_status"] == "acknowledged"
    assert alert.annotations["incident_number"] == "10"
    assert alert.starts_at is None  # no created_at, and this event is not the trigger
    assert alert.ends_at is None


def test_incident_resolved() -> None:
    delivery = pagerduty.parse(load(RESOLVED))
    assert delivery.status is AlertStatus.RESOLVED
    assert delivery.delivery_id == "01BZYH1JJY09P9LEIST8HG2PMN"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "PCPZE64"
    assert alert.status is AlertStatus.RESOLVED
    assert alert.ends_at == datetime(2021, 6, 4, 13, 16, 53, 816000, tzinfo=UTC)
    assert alert.links["pagerduty"] == "https://pig208.pagerduty.com/incidents/PCPZE64"
    assert "assignees" not in alert.annotations  # empty list


def test_signed_priority_updated_body() -> None:
    delivery = pagerduty.parse(json.loads(raw(SIGNED)))
    assert delivery.extra["event_type"] == "incident.priority_updated"
    assert delivery.delivery_id == "01BWDWL3NYY7LUFPZCC28QUCMK"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "PGR0VU2"
    assert alert.status is AlertStatus.FIRING
    assert alert.summary == "A little bump in the road"
    assert alert.severity_hint == "P1"  # priority.summary wins over urgency
    assert alert.labels == {
        "service": "API Service",
        "service_id": "PF9KMXH",
        "urgency": "high",
        "priority": "P1",
    }
    assert alert.links == {"pagerduty": "https://acme.pagerduty.com/incidents/PGR0VU2"}


def test_ping_is_a_ping() -> None:
    # Shape of the "send test event" delivery.
    body = {
        "event": {
            "id": "01FKZOXA868SHYEE4DVNWB5P9W",
            "event_type": "pagey.ping",
            "resource_type": "pagey",
            "occurred_at": "2025-04-07T03:00:55.532Z",
            "agent": {"id": "PVE0ZR9", "type": "user_reference"},
            "client": None,
            "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
        }
    }
    delivery = pagerduty.parse(body)
    assert delivery.is_ping is True
    assert delivery.alerts == ()
    assert delivery.status is None
    assert delivery.delivery_id == "01FKZOXA868SHYEE4DVNWB5P9W"
    assert delivery.extra["event_type"] == "pagey.ping"


def test_incident_created_at_is_the_start() -> None:
    body = load_obj(ACKNOWLEDGED)
    body["event"]["data"]["created_at"] = "2020-04-09T15:16:27Z"  # type: ignore[index]
    body["event"]["data"]["incident_key"] = "d3640fbd41094207a1c11e58e46b1662"  # type: ignore[index]
    (alert,) = pagerduty.parse(body).alerts
    assert alert.starts_at == datetime(2020, 4, 9, 15, 16, 27, tzinfo=UTC)
    assert alert.annotations["incident_key"] == "d3640fbd41094207a1c11e58e46b1662"


def test_note_and_service_events_carry_no_alert() -> None:
    note = load_obj(TRIGGERED)
    note["event"]["event_type"] = "incident.annotated"  # type: ignore[index]
    note["event"]["data"] = {  # type: ignore[index]
        "incident": {"id": "PFQZPSY", "type": "incident_reference"},
        "id": "P2LA89X",
        "content": "I sure am glad we are using PagerDuty!",
        "type": "incident_note",
    }
    delivery = pagerduty.parse(note)
    assert delivery.alerts == ()
    assert delivery.extra["incident_id"] == "PFQZPSY"
    assert delivery.extra["data_type"] == "incident_note"

    service = {"event": {"id": "x", "event_type": "service.updated", "data": {"type": "service"}}}
    assert pagerduty.parse(service).alerts == ()


def _set(body: dict[str, Any], path: str, value: object) -> None:
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("event", _DELETE, "event"),
        ("event", [], "event"),
        ("event.event_type", _DELETE, "event.event_type"),
        ("event.event_type", 5, "event.event_type"),
        ("event.data", _DELETE, "event.data"),
        ("event.data", "incident", "event.data"),
        ("event.data.id", _DELETE, "event.data.id"),
        ("event.data.id", 7, "event.data.id"),
        ("event.data.title", ["x"], "event.data.title"),
        ("event.data.number", "9", "event.data.number"),
        ("event.data.priority", "P1", "event.data.priority"),
        ("event.data.service", 1, "event.data.service"),
        ("event.data.assignees", {}, "event.data.assignees"),
        ("event.occurred_at", "soon", "event.occurred_at"),
        ("event.id", 12, "event.id"),
    ],
)
def test_malformed_bodies_name_the_field(path: str, value: object, field: str) -> None:
    body = load_obj(TRIGGERED)
    _set(body, path, value)
    with pytest.raises(PayloadError) as exc:
        pagerduty.parse(body)
    assert exc.value.field == field


def _signature_vector() -> tuple[str, str, str]:
    secret = ""
    headers: list[str] = []
    for line in raw(SIGNATURE_TXT).decode().splitlines():
        if line.startswith("secret="):
            secret = line.removeprefix("secret=")
        elif line.startswith("X-PagerDuty-Signature:"):
            headers.append(line.split(":", 1)[1].strip())
    assert secret
    assert len(headers) == 2, "expected a valid and a mismatching signature"
    return secret, headers[0], headers[1]


def test_signature_test_vector() -> None:
    secret, valid, mismatch = _signature_vector()
    body = raw(SIGNED)
    assert not body.endswith(b"\n")
    assert pagerduty.verify_signature(body, valid, [secret]) is True
    assert pagerduty.verify_signature(body, mismatch, [secret]) is False


def test_signature_rotation_and_edge_cases() -> None:
    secret, valid, mismatch = _signature_vector()
    body = raw(SIGNED)
    verify = pagerduty.verify_signature
    # Several signatures while secrets rotate: any match verifies.
    assert verify(body, f"{mismatch},{valid}", [secret])
    assert verify(body, f"{mismatch} , {valid}", ["old-secret", secret])
    assert verify(body, valid.upper().replace("V1=", "v1="), [secret])
    # The body must be byte-exact.
    assert not verify(body + b"\n", valid, [secret])
    assert not verify(json.dumps(json.loads(body)).encode(), valid, [secret])
    # No usable secret or signature.
    assert not verify(body, valid, [])
    assert not verify(body, valid, [""])
    assert not verify(body, valid, ["wrong"])
    assert not verify(body, "", [secret])
    assert not verify(body, valid.replace("v1=", "v0="), [secret])
    assert not verify(body, valid.removeprefix("v1="), [secret])
    assert not verify(body, "v1=zz", [secret])
    assert not verify(body, "v1=é" + valid[4:], [secret])
