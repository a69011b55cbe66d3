from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.intake.alerts import alertmanager
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.fingerprint import label_fingerprint
from bot.intake.alerts.model import AlertStatus
from tests.intake.alerts.payloads import KNOWN_BODIES, load, load_obj, raw, source_of
from tests.intake.alerts.test_properties import each_field_mangled

FIRING = "alertmanager/firing_capture_am0.27.0.json"
RESOLVED = "alertmanager/resolved_capture_am0.27.0.json"
FIRING_WIRE = "alertmanager/firing_capture_am0.27.0.wire.json"
RESOLVED_WIRE = "alertmanager/resolved_capture_am0.27.0.wire.json"

GROUP_KEY = '{}:{alertname="ServiceHighErrorRate", service_name="frontend"}'
LABELS = {
    "alertname": "ServiceHighErrorRate",
    "service_name": "frontend",
    "severity": "critical",
    "signal": "errors",
}
GENERATOR = (
    "http://0345b24dba28:9090/graph?g0.expr=sum+by%28service_name%29+%28rate%28calls_total"
    "%7Bstatus_code%3D%22STATUS_CODE_ERROR%22%7D%5B2m%5D%29%29+%2F+sum+by%28service_name%29+"
    "%28rate%28calls_total%5B2m%5D%29%29+%3E+0.05&g0.tab=1"
)


def test_firing_capture() -> None:
    delivery = alertmanager.parse(load(FIRING))

    assert delivery.source == "alertmanager"
    assert delivery.status is AlertStatus.FIRING
    assert delivery.group_key == GROUP_KEY
    assert delivery.receiver == "faultline"
    assert delivery.truncated_alerts == 0
    assert delivery.is_ping is False
    assert delivery.delivery_id is None
    assert delivery.extra["group_labels"] == {
        "alertname": "ServiceHighErrorRate",
        "service_name": "frontend",
    }
    assert delivery.extra["common_labels"] == LABELS
    assert delivery.extra["common_annotations"]["summary"] == "frontend error rate above 5%"
    assert delivery.extra["external_url"] == "http://1a9e6cfeb2bd:9093"

    assert len(delivery.alerts) == 1
    (alert,) = delivery.alerts
    assert alert.source == "alertmanager"
    assert alert.fingerprint == "0eeee852e85422ff"
    assert alert.status is AlertStatus.FIRING
    assert alert.group_key == GROUP_KEY
    assert alert.labels == LABELS
    assert alert.name == "ServiceHighErrorRate"
    assert alert.summary == "frontend error rate above 5%"
    assert alert.description == "frontend is failing 29.25% of calls (baseline 0%)."
    assert alert.severity_hint == "critical"
    assert alert.starts_at == datetime(2026, 8, 24, 10, 34, 30, 583000, tzinfo=UTC)
    assert alert.ends_at is None  # 0001-01-01T00:00:00Z
    assert alert.links == {"generator": GENERATOR}
    assert alert.values == {}
    assert alert.raw["fingerprint"] == "0eeee852e85422ff"


def test_resolved_capture_is_the_same_alert_ended() -> None:
    firing = alertmanager.parse(load(FIRING))
    delivery = alertmanager.parse(load(RESOLVED))

    assert delivery.status is AlertStatus.RESOLVED
    assert delivery.group_key == firing.group_key
    (alert,) = delivery.alerts
    assert alert.status is AlertStatus.RESOLVED
    assert alert.fingerprint == firing.alerts[0].fingerprint == "0eeee852e85422ff"
    assert alert.starts_at == datetime(2026, 8, 24, 10, 34, 30, 583000, tzinfo=UTC)
    assert alert.ends_at == datetime(2026, 8, 24, 10, 39, 30, 583000, tzinfo=UTC)
    assert alert.description == "frontend is failing 10.08% of calls (baseline 0%)."


@pytest.mark.parametrize(
    ("wire", "pretty", "length"),
    [(FIRING_WIRE, FIRING, 1141), (RESOLVED_WIRE, RESOLVED, 1149)],
)
def test_wire_bytes_parse_like_the_pretty_capture(wire: str, pretty: str, length: int) -> None:
    body = raw(wire)
    assert len(body) == length  # the captured Content-Length
    assert body.endswith(b"}\n")  # Go's json.Encoder
    assert b"\\u0026g0.tab=1" in body  # Go escapes & as \u0026
    delivery = alertmanager.parse(json.loads(body))
    assert delivery == alertmanager.parse(load(pretty))
    assert delivery.alerts[0].links["generator"].endswith("&g0.tab=1")


def test_alert_without_fingerprint_hashes_its_labels() -> None:
    # Alertmanager before 0.19 sends no per-alert fingerprint.
    body = load_obj(FIRING)
    alerts = body["alerts"]
    assert isinstance(alerts, list)
    del alerts[0]["fingerprint"]
    del body["truncatedAlerts"]  # before 0.21
    delivery = alertmanager.parse(body)
    assert delivery.alerts[0].fingerprint == label_fingerprint(LABELS) == "182d6af8dddf3661"
    assert delivery.truncated_alerts == 0


def test_group_of_three_older_alerts_with_nested_route_group_key() -> None:
    # Shape of a pre-0.19 grouped delivery: three alerts, no fingerprints,
    # nanosecond startsAt and a nested-route groupKey.
    template = load_obj(FIRING)["alerts"]
    assert isinstance(template, list)
    alerts = []
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        alert = dict(template[0])
        del alert["fingerprint"]
        alert["labels"] = {"alertname": "PingFailed", "instance": host, "severity": "major"}
        alert["annotations"] = {"description": f"{host} does not reply\nsecond line"}
        alert["startsAt"] = "2019-09-27T16:27:56.612666101Z"
        alerts.append(alert)
    body = load_obj(FIRING) | {
        "alerts": alerts,
        "groupKey": '{}/{severity=~"^(?:major)$"}:{alertname="PingFailed"}',
    }
    delivery = alertmanager.parse(body)

    assert len(delivery.alerts) == 3
    assert len({a.fingerprint for a in delivery.alerts}) == 3
    assert delivery.group_key == '{}/{severity=~"^(?:major)$"}:{alertname="PingFailed"}'
    first = delivery.alerts[0]
    assert first.fingerprint == label_fingerprint(first.labels)
    assert first.summary == "10.0.0.1 does not reply"  # first line of description
    assert first.starts_at == datetime(2019, 9, 27, 16, 27, 56, 612666, tzinfo=UTC)
    assert first.severity_hint == "major"


def test_group_status_is_firing_while_any_alert_fires() -> None:
    body = load_obj(RESOLVED)
    alerts = body["alerts"]
    assert isinstance(alerts, list)
    second = load_obj(FIRING)["alerts"]
    assert isinstance(second, list)
    body["alerts"] = [*alerts, second[0]]
    body["status"] = "resolved"
    delivery = alertmanager.parse(body)
    assert [a.status for a in delivery.alerts] == [AlertStatus.RESOLVED, AlertStatus.FIRING]
    assert delivery.status is AlertStatus.FIRING


def test_receiver_is_unescaped_from_quote_meta() -> None:
    body = load_obj(FIRING) | {"receiver": "web\\.hook", "truncatedAlerts": 3}
    delivery = alertmanager.parse(body)
    assert delivery.receiver == "web.hook"
    assert delivery.truncated_alerts == 3
    assert alertmanager.unquote_meta(r"team\-a\ \(prod\)\\x") == r"team-a (prod)\x"


def test_annotation_links_and_summary_fallbacks() -> None:
    body = load_obj(FIRING)
    alerts = body["alerts"]
    assert isinstance(alerts, list)
    alerts[0]["annotations"] = {
        "runbook_url": "https://runbooks/high-error-rate",
        "dashboard_url": "https://grafana/d/abc",
        "panel_url": "https://grafana/d/abc?viewPanel=2",
        "silence_url": " ",
    }
    alerts[0]["generatorURL"] = ""
    (alert,) = alertmanager.parse(body).alerts
    assert alert.links == {
        "runbook": "https://runbooks/high-error-rate",
        "dashboard": "https://grafana/d/abc",
        "panel": "https://grafana/d/abc?viewPanel=2",
    }
    assert alert.summary == "ServiceHighErrorRate"  # no summary or description: alertname


def test_empty_alert_list_keeps_the_body_status() -> None:
    body = load_obj(RESOLVED) | {"alerts": None}
    delivery = alertmanager.parse(body)
    assert delivery.alerts == ()
    assert delivery.status is AlertStatus.RESOLVED


def test_newer_keys_are_accepted() -> None:
    body = load_obj(FIRING) | {
        "notification_reason": "new_alerts",
        "routeLabels": {"team": "web"},
    }
    delivery = alertmanager.parse(body)
    assert delivery.extra["notification_reason"] == "new_alerts"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.clear() or b.update({"x": 1}), "alerts"),
        (lambda b: b.update(alerts="nope"), "alerts"),
        (lambda b: b.update(alerts=[42]), "alerts[0]"),
        (lambda b: b["alerts"][0].update(status="pending"), "alerts[0].status"),
        (lambda b: b["alerts"][0].pop("status"), "alerts[0].status"),
        (lambda b: b["alerts"][0].update(labels=["a"]), "alerts[0].labels"),
        (lambda b: b["alerts"][0]["labels"].update(severity=1), "alerts[0].labels.severity"),
        (lambda b: b["alerts"][0]["labels"].update({"a.b": None}), 'alerts[0].labels["a.b"]'),
        (lambda b: b["alerts"][0].update(startsAt="abc"), "alerts[0].startsAt"),
        (lambda b: b["alerts"][0].update(endsAt=[]), "alerts[0].endsAt"),
        (lambda b: b["alerts"][0].update(fingerprint=7), "alerts[0].fingerprint"),
        (lambda b: b["alerts"][0].update(generatorURL={}), "alerts[0].generatorURL"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda b: b.update(truncatedAlerts="3"), "truncatedAlerts"),
        (lambda b: b.update(groupKey=666), "groupKey"),
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.update(status="broken"), "status"),
        (lambda b: b.update(commonLabels=[]), "commonLabels"),
        (lambda b: b.update(receiver=None) or b.update(externalURL=1), "externalURL"),
    ],
)
def test_malformed_bodies_name_the_field(mutate: object, field: str) -> None:
    body = load_obj(FIRING)
    assert callable(mutate)
    mutate(body)
    with pytest.raises(PayloadError) as exc:
        alertmanager.parse(body)
    assert exc.value.field == field
    assert str(exc.value).startswith(f"{field}: ")


def test_start_time_error_reads_well() -> None:
    body = load_obj(FIRING)
    body["alerts"][0]["startsAt"] = "abc"  # type: ignore[index]
    with pytest.raises(PayloadError, match=r"^alerts\[0\]\.startsAt: not an RFC 3339 time: 'abc'$"):
        alertmanager.parse(body)


@pytest.mark.parametrize("body", [None, [], "x", 1, True])
def test_non_object_body(body: object) -> None:
    with pytest.raises(PayloadError) as exc:
        alertmanager.parse(body)
    assert exc.value.field == "$"


def test_grafana_body_gets_a_hint() -> None:
    body = load("grafana/unified_firing_two_alerts_doc_example.json")
    with pytest.raises(PayloadError, match="grafana source") as exc:
        alertmanager.parse(body)
    assert exc.value.field == "version"


# -- the common-shape reader gives what the careful reader gives -----------------------------


def _careful(body: object) -> tuple[str, object]:
    try:
        return "delivery", alertmanager.parse_group(
            body, source=alertmanager.SOURCE, version=alertmanager.WEBHOOK_VERSION
        )
    except PayloadError as error:
        return "refused", (error.field, error.message)


def _public(body: object) -> tuple[str, object]:
    try:
        return "delivery", alertmanager.parse(body)
    except PayloadError as error:
        return "refused", (error.field, error.message)


AM_BODIES = [name for name in KNOWN_BODIES if source_of(name) == "alertmanager"]


@pytest.mark.parametrize("name", AM_BODIES)
def test_real_bodies_are_read_the_quick_way_and_alike(name: str) -> None:
    body = load_obj(name)
    quick = alertmanager.read_common(body)
    assert quick is not None  # Alertmanager's own bodies are the common shape
    assert quick == alertmanager.parse_group(body, source="alertmanager", version="4")
    for alert in quick.alerts:  # its own maps, not the body's (the raw keeps those)
        assert alert.labels is not alert.raw["labels"]


@pytest.mark.parametrize("name", AM_BODIES)
def test_every_field_dropped_or_replaced_reads_alike_both_ways(name: str) -> None:
    for path, value, body in each_field_mangled(name):
        assert _public(copy.deepcopy(body)) == _careful(body), (path, value)


_TEXTS = st.sampled_from(
    ["firing", "resolved", "Firing", " resolved", "4", "1", "", "x", "web\\.hook",
     "2026-11-26T09:00:00Z", "0001-01-01T00:00:00Z", "1448435530000", "not a time", "\ud800"]
)  # fmt: skip
_ANY = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | _TEXTS
_MAPS = st.none() | st.dictionaries(st.sampled_from(["severity", "alertname", "a"]), _TEXTS | _ANY)
_ALERT = st.fixed_dictionaries(
    {},
    optional={
        "status": _TEXTS | _ANY,
        "labels": _MAPS,
        "annotations": _MAPS,
        "startsAt": _TEXTS | _ANY,
        "endsAt": _TEXTS | _ANY,
        "generatorURL": _TEXTS | _ANY,
        "fingerprint": _TEXTS | _ANY,
        "extra": _ANY | st.lists(_ANY, max_size=2),
    },
)
_GROUP = st.fixed_dictionaries(
    {},
    optional={
        "alerts": st.none() | st.lists(_ALERT | _ANY, max_size=3),
        "version": _TEXTS | _ANY,
        "groupKey": _TEXTS | _ANY,
        "truncatedAlerts": _ANY | st.sampled_from([0, 3, -1, 2**63, 2**63 - 1, 2.0]),
        "status": _TEXTS | _ANY,
        "receiver": _TEXTS | _ANY,
        "externalURL": _TEXTS | _ANY,
        "notification_reason": _TEXTS | _ANY,
        "groupLabels": _MAPS,
        "commonLabels": _MAPS,
        "commonAnnotations": _MAPS | _ANY,
    },
)


@settings(max_examples=1500, deadline=None)
@given(body=_GROUP | _ANY)
def test_generated_bodies_read_alike_both_ways(body: object) -> None:
    assert _public(copy.deepcopy(body)) == _careful(body)
