from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.intake.alerts import datadog
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.fingerprint import label_fingerprint
from bot.intake.alerts.model import AlertStatus
from tests.intake.alerts.payloads import load

TRIGGERED = "datadog/triggered_custom_payload_capture_2015.json"
RECOVERED = "datadog/recovered_custom_payload_capture_2015.json"
TEMPLATE = "datadog/default_payload_template.json"

TAGS = {
    "availability-zone": "us-west-1a",
    "host": "i-3b93aafb",
    "image": "ami-9f305fff",
    "instance-type": "c3.large",
    "kernel": "none",
    "monitor": "",
    "org": "6585",
    "region": "us-west-1",
    "role": "dock",
    "security-group": "sg-59a3503c,sg-cb8e7dae",
}
FINGERPRINT = label_fingerprint(
    {"title": "Dock is almost out of memory...", "scope": "host:i-3b93aafb"}
)


def test_triggered_capture() -> None:
    delivery = datadog.parse(load(TRIGGERED))

    assert delivery.source == "datadog"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.delivery_id == "3089904566766935419"
    assert delivery.group_key is None
    assert delivery.extra["transition"] == "Triggered"
    assert delivery.extra["event_type"] == "metric_alert_monitor"
    (alert,) = delivery.alerts
    assert alert.status is AlertStatus.FIRING
    assert alert.fingerprint == FINGERPRINT
    assert alert.summary == "Dock is almost out of memory..."
    assert alert.labels == TAGS
    assert alert.starts_at == datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)  # "1448435530000"
    assert alert.ends_at is None
    assert alert.links == {
        "datadog": "https://app.datadoghq.com/event/event?id=3089904566766935419"
    }
    assert alert.description.startswith("restart docker\n")  # %%% markers removed
    assert "%%%" not in alert.description
    assert "**system.mem.usable**" in alert.description
    assert alert.severity_hint is None
    assert alert.raw["secret"] == "<redacted>"  # the template's shared secret is not kept


def test_recovered_capture_resolves_the_same_alert() -> None:
    delivery = datadog.parse(load(RECOVERED))

    assert delivery.status is AlertStatus.RESOLVED
    assert delivery.delivery_id == "3089903685627551077"
    assert delivery.extra["transition"] == "Recovered"
    (alert,) = delivery.alerts
    assert alert.status is AlertStatus.RESOLVED
    assert alert.fingerprint == FINGERPRINT
    assert alert.summary == "Dock is almost out of memory..."
    assert alert.labels == TAGS
    assert alert.starts_at is None
    assert alert.ends_at == datetime(2015, 11, 25, 7, 11, 17, tzinfo=UTC)  # "1448435477000"
    assert "was marked as **recovered**" in alert.description


def test_unrendered_default_template_is_rejected() -> None:
    # Every value is still "$VARIABLE": nothing says whether it fired.
    with pytest.raises(PayloadError) as exc:
        datadog.parse(load(TEMPLATE))
    assert exc.value.field == "alert_transition"
    assert "$ALERT_TRANSITION" in exc.value.message


def _render(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, dict):
        return {k: _render(v, values) for k, v in template.items()}
    if isinstance(template, str) and template in values:
        return values[template]
    return template


def test_default_template_keys_when_rendered() -> None:
    # The default template rendered with the values of the triggered capture.
    body = _render(
        load(TEMPLATE),
        {
            "$EVENT_MSG": "%%%\nrestart docker\n%%%",
            "$LAST_UPDATED": "1448435530000",
            "$EVENT_TYPE": "metric_alert_monitor",
            "$EVENT_TITLE": "[Triggered on {host:i-3b93aafb}] Dock is almost out of memory...",
            "$DATE": "1448435530000",
            "$ORG_ID": "9822",
            "$ORG_NAME": "CodeNow",
            "$ID": "3089904566766935419",
        },
    )
    delivery = datadog.parse(body)
    assert delivery.status is AlertStatus.FIRING  # from the title's [Triggered …]
    assert delivery.delivery_id == "3089904566766935419"
    assert delivery.extra["org"] == {"id": "9822", "name": "CodeNow"}
    assert delivery.extra["event_type"] == "metric_alert_monitor"
    assert delivery.extra["last_updated"] == datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)
    (alert,) = delivery.alerts
    assert alert.fingerprint == FINGERPRINT  # same identity as the custom-template capture
    assert alert.summary == "Dock is almost out of memory..."
    assert alert.labels == {"host": "i-3b93aafb"}  # the title's scope
    assert alert.description == "restart docker"
    assert alert.starts_at == datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)

    recovered = dict(body, title="[Recovered on {host:i-3b93aafb}] Dock is almost out of memory...")
    again = datadog.parse(recovered).alerts[0]
    assert again.status is AlertStatus.RESOLVED
    assert again.fingerprint == FINGERPRINT


def test_variable_style_keys() -> None:
    body = {
        "ALERT_ID": "1234",
        "$ALERT_TRANSITION": "Re-Triggered",
        "alertTitle": "[P2] [Re-Triggered on {host:ip-012345}] Host is Down",
        "AGGREG_KEY": "9bd4ac313a4d1e8fae2482df7b77628",
        "PRIORITY": "normal",
        "ALERT_PRIORITY": "P2",
        "ALERT_STATUS": "system.load.1 over host:ip-012345 was > 0",
        "TAGS": "env:prod, team:core,host:ip-012345",
        "ALERT_SCOPE": "host:ip-012345",
        "LINK": "https://app.datadoghq.com/event/event?id=1",
        "EVENT_MSG": "%%%\nHost is down\n%%%",
        "DATE": 1406662672000,
        "ALERT_CYCLE_KEY": "$ALERT_CYCLE_KEY",
    }
    delivery = datadog.parse(body)
    (alert,) = delivery.alerts
    assert alert.status is AlertStatus.FIRING
    assert alert.fingerprint == "9bd4ac313a4d1e8fae2482df7b77628"  # aggregation key first
    assert alert.summary == "Host is Down"
    assert alert.severity_hint == "P2"
    assert alert.labels == {
        "env": "prod",
        "team": "core",
        "host": "ip-012345",
        "monitor_id": "1234",
    }
    assert alert.annotations["alert_status"] == "system.load.1 over host:ip-012345 was > 0"
    assert alert.links == {"datadog": "https://app.datadoghq.com/event/event?id=1"}
    assert alert.starts_at == datetime(2014, 7, 29, 19, 37, 52, tzinfo=UTC)
    assert "cycle_key" not in delivery.extra  # unsubstituted variable counts as absent


@pytest.mark.parametrize(
    ("transition", "status"),
    [
        ("Triggered", AlertStatus.FIRING),
        ("Re-Triggered", AlertStatus.FIRING),
        ("Warn", AlertStatus.FIRING),
        ("Re-Warn", AlertStatus.FIRING),
        ("No Data", AlertStatus.FIRING),
        ("Re-No Data", AlertStatus.FIRING),
        ("Renotify", AlertStatus.FIRING),
        ("Recovered", AlertStatus.RESOLVED),
        ("Warn Recovered", AlertStatus.RESOLVED),
        ("Resolved", AlertStatus.RESOLVED),
        ("OK", AlertStatus.RESOLVED),
        ("ok", AlertStatus.RESOLVED),
    ],
)
def test_transitions(transition: str, status: AlertStatus) -> None:
    body = {"alert_id": "42", "alert_transition": transition, "title": "disk full"}
    assert datadog.parse(body).alerts[0].status is status


@pytest.mark.parametrize(("alert_type", "status"), [("success", "resolved"), ("error", "firing")])
def test_alert_type_without_transition(alert_type: str, status: str) -> None:
    delivery = datadog.parse({"alert_id": "42", "alert_type": alert_type})
    assert delivery.status == status
    assert delivery.alerts[0].fingerprint == "42"
    assert delivery.alerts[0].summary == "Datadog alert 42"


def test_multi_alert_monitor_groups_get_their_own_fingerprint() -> None:
    first = datadog.parse(
        {"alert_id": "42", "alert_transition": "Triggered", "alert_scope": "host:a"}
    )
    second = datadog.parse(
        {"alert_id": "42", "alert_transition": "Triggered", "alert_scope": "host:b"}
    )
    recovered = datadog.parse(
        {"alert_id": "42", "alert_transition": "Recovered", "alert_scope": "host:a"}
    )
    assert first.alerts[0].fingerprint != second.alerts[0].fingerprint
    assert first.alerts[0].fingerprint == recovered.alerts[0].fingerprint


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "$"),
        ({"alert_id": "1"}, "alert_transition"),
        ({"title": "no transition here"}, "alert_transition"),
        ({"alert_transition": "Triggered"}, "alert_id"),
        ({"alert_transition": "Triggered", "title": {"x": 1}}, "title"),
        ({"alert_transition": ["Triggered"], "alert_id": "1"}, "alert_transition"),
        ({"ALERT_TRANSITION": True, "alert_id": "1"}, "ALERT_TRANSITION"),
        ({"alert_transition": "Triggered", "alert_id": "1", "date": "yesterday"}, "date"),
        ({"alert_transition": "Triggered", "alert_id": "1", "org": "acme"}, "org"),
        ({"alert_transition": "Triggered", "alert_id": "1", "org": {"id": []}}, "org.id"),
        ({"alert_transition": "Triggered", "alert_id": "1", "event_tags": {}}, "event_tags"),
    ],
)
def test_malformed_bodies_name_the_field(body: object, field: str) -> None:
    with pytest.raises(PayloadError) as exc:
        datadog.parse(body)
    assert exc.value.field == field
