"""Whatever arrives, a parser returns a well-formed Delivery or raises PayloadError."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.intake.alerts.errors import PayloadError, json_type
from bot.intake.alerts.fingerprint import label_fingerprint, parse_time
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
from bot.intake.alerts.registry import PARSERS
from tests.intake.alerts.payloads import KNOWN_BODIES, load, source_of

BUILTIN = ("alertmanager", "grafana", "pagerduty", "datadog", "events")

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Keys and string values the senders use, so generated bodies get past the first check.
KEYS = (
    "alerts", "status", "labels", "annotations", "startsAt", "endsAt", "fingerprint",
    "generatorURL", "version", "groupKey", "truncatedAlerts", "receiver", "groupLabels",
    "commonLabels", "externalURL", "values", "orgId", "state", "dashboardURL", "silenceURL",
    "event", "event_type", "id", "data", "type", "incident", "title", "number", "priority",
    "summary", "urgency", "service", "assignees", "html_url", "occurred_at", "created_at",
    "routing_key", "event_action", "dedup_key", "payload", "source", "severity", "timestamp",
    "custom_details", "links", "href", "text", "images", "src", "alert_transition", "alert_id",
    "ALERT_TYPE", "aggreg_key", "tags", "event_tags", "alert_scope", "date", "org", "body",
    "link", "last_updated",
)  # fmt: skip
WORDS = (
    "firing", "resolved", "4", "1", "incident", "incident.triggered", "incident.resolved",
    "pagey.ping", "trigger", "acknowledge", "resolve", "critical", "info", "Triggered",
    "Recovered", "success", "[Triggered on {host:a}] x", "0001-01-01T00:00:00Z",
    "2021-10-12T09:51:03.157076+02:00", "1448435530000", "$ALERT_ID", "a:b,c", "",
)  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
shaped_values = st.recursive(
    scalars | st.sampled_from(WORDS),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), kids, max_size=6)
    ),
    max_leaves=30,
)
WRONG: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**30,
    "",
    "x",
    "2021",
    [],
    [1],
    {},
    {"a": 1},
)


def check_delivery(delivery: object, source: str) -> None:
    assert isinstance(delivery, Delivery)
    assert delivery.source == source
    assert isinstance(delivery.alerts, tuple)
    assert delivery.status is None or isinstance(delivery.status, AlertStatus)
    assert isinstance(delivery.truncated_alerts, int)
    assert delivery.truncated_alerts >= 0
    assert delivery.group_key is None or isinstance(delivery.group_key, str)
    assert delivery.receiver is None or isinstance(delivery.receiver, str)
    assert delivery.delivery_id is None or isinstance(delivery.delivery_id, str)
    if delivery.is_ping:
        assert delivery.alerts == ()
    for alert in delivery.alerts:
        check_alert(alert, source)


def check_alert(alert: object, source: str) -> None:
    assert isinstance(alert, NormalizedAlert)
    assert alert.source == source
    assert isinstance(alert.fingerprint, str)
    assert alert.fingerprint.strip()
    assert isinstance(alert.status, AlertStatus)
    assert isinstance(alert.summary, str)
    assert alert.summary.strip()
    assert isinstance(alert.description, str)
    for mapping in (alert.labels, alert.annotations, alert.links):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in alert.values.items())
    assert alert.severity_hint is None or isinstance(alert.severity_hint, str)
    for moment in (alert.starts_at, alert.ends_at):
        if moment is not None:
            assert moment.tzinfo is UTC


def check_error(error: PayloadError) -> None:
    assert isinstance(error.field, str)
    assert error.field
    assert isinstance(error.message, str)
    assert str(error) == f"{error.field}: {error.message}"


def parse_or_payload_error(source: str, body: object) -> None:
    try:
        delivery = PARSERS[source](body)
    except PayloadError as exc:
        check_error(exc)
    else:
        check_delivery(delivery, source)


@SETTINGS
@given(body=json_values)
def test_arbitrary_json_never_crashes_a_parser(body: object) -> None:
    for source in BUILTIN:
        parse_or_payload_error(source, body)


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(KEYS), shaped_values, max_size=8))
def test_sender_shaped_json_never_crashes_a_parser(body: object) -> None:
    for source in BUILTIN:
        parse_or_payload_error(source, body)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        path = (*prefix, key)
        found.append(path)
        found.extend(_paths(item, path))
    return found


@st.composite
def mutated_payloads(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(KNOWN_BODIES))
    body = load(name)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(body)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = body
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        operation = draw(st.sampled_from(("drop", "wrong_type", "replace")))
        if operation == "drop":
            del parent[key]
        elif operation == "wrong_type":
            current = json_type(parent[key])
            wrong = draw(st.sampled_from([w for w in WRONG if json_type(w) != current]))
            parent[key] = copy.deepcopy(wrong)  # WRONG's lists and dicts must stay pristine
        else:
            parent[key] = draw(shaped_values)
    return name, body


@SETTINGS
@given(case=mutated_payloads())
def test_mutated_real_payloads_never_crash_a_parser(case: tuple[str, Any]) -> None:
    name, body = case
    parse_or_payload_error(source_of(name), body)
    for source in BUILTIN:  # and a body sent to the wrong source's endpoint
        parse_or_payload_error(source, body)


@SETTINGS
@given(value=json_values)
def test_parse_time_gives_utc_none_or_payload_error(value: object) -> None:
    try:
        parsed = parse_time(value, "t")
    except PayloadError as exc:
        check_error(exc)
        parsed = None
    assert parsed is None or parsed.tzinfo is UTC


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@SETTINGS
@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1), timezones=offsets
    ),
    separator=st.sampled_from(("T", " ")),
)
def test_parse_time_round_trips_iso_format(moment: datetime, separator: str) -> None:
    parsed = parse_time(moment.isoformat(sep=separator), "t")
    assert parsed == moment
    assert parsed is not None
    assert parsed.tzinfo is UTC


@SETTINGS
@given(
    moment=st.datetimes(
        min_value=datetime(1974, 1, 1), max_value=datetime(3000, 1, 1), timezones=st.just(UTC)
    )
)
def test_epoch_milliseconds_strings_round_trip(moment: datetime) -> None:
    # Below 1e11 a number is read as seconds, so milliseconds before March 1973 are ambiguous.
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    millis = (moment - epoch) // timedelta(milliseconds=1)
    assert parse_time(str(millis), "date") == epoch + timedelta(milliseconds=millis)
    assert parse_time(millis, "date") == epoch + timedelta(milliseconds=millis)


@SETTINGS
@given(labels=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=8))
def test_label_fingerprint_ignores_order(labels: dict[str, str]) -> None:
    reordered = dict(sorted(labels.items(), reverse=True))
    fingerprint = label_fingerprint(labels)
    assert fingerprint == label_fingerprint(reordered)
    assert len(fingerprint) == 16
    assert all(c in "0123456789abcdef" for c in fingerprint)


# Values that have broken parsers before: huge ints (str() refuses > 4300 digits),
# lone surrogates, non-finite floats, empty containers.
AWKWARD: tuple[object, ...] = (
    _DROP := object(),
    None,
    True,
    -1,
    10**5000,
    float("nan"),
    float("inf"),
    "",
    "\ud800",
    "$ALERT_ID",
    [],
    {},
    [[[]]],
)


def each_field_mangled(name: str) -> Iterator[tuple[tuple[Any, ...], object, Any]]:
    """The real body ``name`` once per field and awkward value: (path, value, body) with
    that field dropped or replaced by the value (a fresh body each time)."""
    for path in _paths(load(name)):
        for value in AWKWARD:
            body = load(name)
            parent: Any = body
            for key in path[:-1]:
                parent = parent[key]
            if value is _DROP:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)
            yield path, value, body


@pytest.mark.parametrize("name", KNOWN_BODIES)
def test_every_field_of_every_real_body_dropped_or_replaced(name: str) -> None:
    for _, _, body in each_field_mangled(name):
        for source in BUILTIN:
            parse_or_payload_error(source, body)
