"""The PagerDuty stand-in is held to PagerDuty's own description of the Events API v2.

If the stand-in accepted what PagerDuty refuses (or refused what it accepts), every paging test
built on it would prove nothing: here it must accept the description's own example and the
examples of PagerDuty's documentation, refuse each missing required field, each bad enum value
and each wrong type with PagerDuty's error shape, and answer in the shapes the file gives.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.pagerduty import (
    FakePagerDuty,
    example_event,
    request_schema,
    response_schema,
    schema_problems,
    spec,
)
from tests.intake.alerts.payloads import raw

EXAMPLE_KEY = example_event()["routing_key"]
DOC_EXAMPLES = [
    f"pagerduty_events_v2/pagerduty_events_api_v2_{action}_doc_example.json"
    for action in ("trigger", "acknowledge", "resolve")
]


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty({EXAMPLE_KEY, "routingkeyhere"}) as fake:
        yield fake


def send(pd: FakePagerDuty, body: Any) -> httpx.Response:
    return httpx.post(f"{pd.url}/v2/enqueue", json=body, timeout=5)


def without(event: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    del node[last]
    return changed


def with_value(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def test_the_description_is_pagerdutys_events_api_v2() -> None:
    assert spec()["servers"] == [{"url": "https://events.pagerduty.com/v2"}]
    responses = spec()["paths"]["/enqueue"]["post"]["responses"]
    assert set(responses) == {"202", "400", "429", "5XX"}
    assert request_schema()["required"] == ["routing_key", "event_action"]


def test_it_accepts_the_descriptions_own_example_and_answers_in_its_success_shape(
    pd: FakePagerDuty,
) -> None:
    answer = send(pd, example_event())
    assert answer.status_code == 202
    body = answer.json()
    assert schema_problems(body, response_schema("202")) == []
    assert body == {"status": "success", "message": "Event processed", "dedup_key": "srv01/mysql"}
    assert pd.actions("srv01/mysql") == ["trigger"]


@pytest.mark.parametrize("name", DOC_EXAMPLES)
def test_it_accepts_the_examples_of_pagerdutys_documentation(pd: FakePagerDuty, name: str) -> None:
    event = json.loads(raw(name))
    pd.routing_keys.add(event["routing_key"])
    answer = send(pd, event)
    assert answer.status_code == 202, answer.text
    assert pd.events[-1]["event_action"] == event["event_action"]


@pytest.mark.parametrize(
    "path",
    ["routing_key", "event_action", "payload.summary", "payload.severity", "payload.source"],
)
def test_each_missing_required_field_is_refused_with_pagerdutys_error_shape(
    pd: FakePagerDuty, path: str
) -> None:
    answer = send(pd, without(example_event(), path))
    assert answer.status_code == 400
    body = answer.json()
    assert schema_problems(body, response_schema("5XX")) == []  # status and message required
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert any(f"'{path}'" in error for error in body["errors"]), body
    assert pd.events == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("event_action", "fire"),
        ("payload.severity", "high"),
        ("payload.severity", "CRITICAL"),
    ],
)
def test_a_value_outside_an_enum_is_refused(pd: FakePagerDuty, path: str, value: str) -> None:
    answer = send(pd, with_value(example_event(), path, value))
    assert answer.status_code == 400
    assert any(f"'{path}' is invalid" in e for e in answer.json()["errors"])


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("routing_key", 42),
        ("dedup_key", ["a"]),
        ("payload.summary", None),
        ("payload.custom_details", "free space 1%"),
        ("payload.timestamp", "yesterday"),
        ("links", {"href": "https://x"}),
        ("images", [{"alt": "no src"}]),
    ],
)
def test_a_wrong_type_or_shape_is_refused(pd: FakePagerDuty, path: str, value: Any) -> None:
    answer = send(pd, with_value(example_event(), path, value))
    assert answer.status_code == 400, answer.text
    assert pd.events == []


def test_the_rules_stated_in_prose_hold_too(pd: FakePagerDuty) -> None:
    ack = {"routing_key": EXAMPLE_KEY, "event_action": "acknowledge"}
    assert send(pd, ack).status_code == 400  # dedup_key: "Required unless ... trigger"
    trigger = {"routing_key": EXAMPLE_KEY, "event_action": "trigger"}
    assert send(pd, trigger).status_code == 400  # a trigger carries its payload
    unknown = with_value(example_event(), "routing_key", "0" * 32)
    answer = send(pd, unknown)
    assert answer.status_code == 400
    assert "'routing_key' is invalid" in answer.json()["errors"]
    # A trigger without a dedup key gets one made up, as PagerDuty does.
    answer = send(pd, without(example_event(), "dedup_key"))
    assert answer.status_code == 202
    assert answer.json()["dedup_key"]


def test_malformed_json_is_refused_as_pagerduty_does(pd: FakePagerDuty) -> None:
    answer = httpx.post(
        f"{pd.url}/v2/enqueue",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["status"] == "Unrecognized object"


def test_injected_faults_come_before_the_event_is_applied_and_in_pagerdutys_shapes() -> None:
    with FakePagerDuty({EXAMPLE_KEY}, fault_rate=1.0, seed=3, retry_after=7) as pd:
        codes = set()
        for _ in range(20):
            answer = send(pd, example_event())
            codes.add(answer.status_code)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "7"
            else:
                assert schema_problems(answer.json(), response_schema("5XX")) == []
        assert codes == {429, 500}
        assert pd.events == []
        assert sum(pd.faults.values()) == 20
