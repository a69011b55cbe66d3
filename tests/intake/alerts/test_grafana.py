from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.intake.alerts import grafana
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.model import AlertStatus
from tests.intake.alerts.payloads import load, load_obj

TWO_ALERTS = "grafana/unified_firing_two_alerts_doc_example.json"
UPSTREAM_DEFAULT = "grafana/unified_firing_default_payload_upstream_test.json"
RESOLVED_G9 = "grafana/unified_resolved_grafana9_zulip_fixture.json"


def test_docs_example_with_two_firing_alerts() -> None:
    delivery = grafana.parse(load(TWO_ALERTS))

    assert delivery.source == "grafana"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.group_key == "{}:{}"
    assert delivery.receiver == "My Super Webhook"
    assert delivery.truncated_alerts == 0
    assert delivery.extra["org_id"] == 1
    assert delivery.extra["state"] == "alerting"
    assert delivery.extra["title"] == "[FIRING:2]  (blue)"
    assert delivery.extra["message"].startswith("**Firing**")
    assert delivery.extra["common_labels"] == {"team": "blue"}
    assert delivery.extra["group_labels"] == {}
    assert delivery.extra["external_url"] == "https://play.grafana.org/"

    assert [a.fingerprint for a in delivery.alerts] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    memory, cpu = delivery.alerts
    assert memory.status is AlertStatus.FIRING
    assert memory.group_key == "{}:{}"
    assert memory.labels == {"alertname": "High memory usage", "team": "blue", "zone": "us-1"}
    assert memory.name == "High memory usage"
    assert memory.summary == "This alert was triggered for zone us-1"
    assert memory.description == "The system has high memory usage"
    # +02:00 offset, microsecond fraction
    assert memory.starts_at == datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)
    assert memory.starts_at == datetime(
        2021, 10, 12, 9, 51, 3, 157076, tzinfo=timezone(timedelta(hours=2))
    )
    assert memory.ends_at is None
    assert memory.values == {"B": 44.23943737541908, "C": 1.0}
    assert all(isinstance(v, float) for v in memory.values.values())
    assert memory.links == {
        "generator": "https://play.grafana.org/alerting/1afz29v7z/edit",
        "runbook": "https://myrunbook.com/runbook/1234",
        "silence": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana"
        "&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
    }  # dashboardURL and panelURL are "" and left out
    assert memory.severity_hint is None
    assert cpu.labels["zone"] == "eu-1"
    assert cpu.starts_at == datetime(2021, 10, 12, 7, 56, 3, 157076, tzinfo=UTC)


def test_upstream_default_payload() -> None:
    delivery = grafana.parse(load(UPSTREAM_DEFAULT))

    assert delivery.group_key == "alertname"
    assert delivery.receiver == "my_receiver"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.extra["group_labels"] == {"alertname": ""}
    assert delivery.extra["title"] == "[FIRING:1]  (val1)"
    (alert,) = delivery.alerts
    assert alert.fingerprint == "fac0861a85de433a"
    assert alert.labels == {"alertname": "alert1", "lbl1": "val1"}
    assert alert.annotations == {"ann1": "annv1"}
    assert alert.summary == "alert1"  # no summary/description annotation
    assert alert.starts_at is None  # Go zero time
    assert alert.ends_at is None
    assert alert.values == {}  # "values": null
    assert alert.links == {
        "generator": "http://localhost/test?orgId=1",
        "silence": "http://localhost/alerting/silence/new?alertmanager=grafana"
        "&matcher=alertname%3Dalert1&matcher=lbl1%3Dval1&orgId=1",
    }


def test_grafana9_resolved_delivery() -> None:
    delivery = grafana.parse(load(RESOLVED_G9))

    assert delivery.status is AlertStatus.RESOLVED
    assert delivery.group_key == '{}/{test="true"}:{}'
    assert delivery.receiver == "Webhook test"
    assert delivery.extra["state"] == "ok"
    assert delivery.extra["title"] == "[RESOLVED]  (Test alert true)"
    (alert,) = delivery.alerts
    assert alert.status is AlertStatus.RESOLVED
    assert alert.fingerprint == "d8a21484c9c25a60"
    assert alert.labels == {"alertname": "Test alert", "test": "true"}
    assert alert.summary == "This is a summary field, failure on <no value>"
    # nanosecond fractions truncated to microseconds
    assert alert.starts_at == datetime(2022, 6, 17, 0, 41, 0, 782137, tzinfo=UTC)
    assert alert.ends_at == datetime(2022, 6, 17, 0, 51, 24, 67337, tzinfo=UTC)
    assert alert.values == {}  # no values key, only valueString
    assert alert.raw["valueString"].startswith("[ var='B0'")
    assert alert.links["runbook"] == "https://example.com/"
    assert alert.links["generator"] == (
        "https://grafana.example.com/alerting/grafana/zTjxv_C7k/view"
    )
    assert "dashboard" not in alert.links


def test_dashboard_panel_image_links_and_null_values() -> None:
    # Grafana 11 fills dashboardURL/panelURL/imageURL and may send a null value.
    body = load_obj(TWO_ALERTS)
    alert_obj = body["alerts"][0]  # type: ignore[index]
    alert_obj["dashboardURL"] = "https://grafana.test/d/uid?orgId=1"
    alert_obj["panelURL"] = "https://grafana.test/d/uid?orgId=1&viewPanel=2"
    alert_obj["imageURL"] = "https://grafana.test/render/panel.png"
    alert_obj["values"] = {"A": 2473545728, "B": 0, "C": None}
    alert_obj["orgId"] = 1
    alert = grafana.parse(body).alerts[0]
    assert alert.links["dashboard"] == "https://grafana.test/d/uid?orgId=1"
    assert alert.links["panel"] == "https://grafana.test/d/uid?orgId=1&viewPanel=2"
    assert alert.links["image"] == "https://grafana.test/render/panel.png"
    assert alert.values == {"A": 2473545728.0, "B": 0.0}


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_set(["alerts", 0, "values"], {"B": "44"}), "alerts[0].values.B"),
        (_set(["alerts", 0, "values"], {"B": True}), "alerts[0].values.B"),
        (_set(["alerts", 0, "values"], {"B": 10**400}), "alerts[0].values.B"),
        (_set(["alerts", 0, "values"], [1, 2]), "alerts[0].values"),
        (_set(["alerts", 0, "dashboardURL"], 3), "alerts[0].dashboardURL"),
        (_set(["alerts", 0, "valueString"], {}), "alerts[0].valueString"),
        (_set(["alerts", 1, "endsAt"], "yesterday"), "alerts[1].endsAt"),
        (_set(["orgId"], "1"), "orgId"),
        (_set(["state"], 0), "state"),
        (_set(["version"], "4"), "version"),
    ],
)
def test_malformed_bodies_name_the_field(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = load_obj(TWO_ALERTS)
    mutate(body)
    with pytest.raises(PayloadError) as exc:
        grafana.parse(body)
    assert exc.value.field == field


def test_legacy_grafana_body_is_rejected_with_a_reason() -> None:
    legacy = {
        "ruleId": 1,
        "ruleName": "Panel Title alert",
        "state": "alerting",
        "evalMatches": [{"value": 1, "metric": "Count", "tags": {}}],
        "title": "[Alerting] Panel Title alert",
    }
    with pytest.raises(PayloadError, match="legacy") as exc:
        grafana.parse(legacy)
    assert exc.value.field == "alerts"
