"""Crafted bodies at every endpoint, open and token-guarded, on SQLite and Postgres.

Each answers 400 with the JSON path and the reason, stores nothing, and the server still
answers ``/readyz``; the fuzzer's generator (bench/fuzz_webhooks.py) runs in-process too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fuzz_webhooks import SOURCES, TOKEN, TOKEN_ENV, Tally, check_answer, config_yaml
from bench.fuzz_webhooks import generate as fuzz_bodies
from bot.intake.alerts.decode import MAX_DEPTH
from bot.store.models import WebhookDelivery
from tests.web.test_webhooks import Server, make_server

BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fuzzed(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """An open (``<source>``) and a guarded (``<source>-auth``) endpoint per source."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    yield from make_server(database_url, tmp_path, monkeypatch, config_yaml())


def alertmanager(alert_labels: bytes = b'{"alertname": "x"}', extra: bytes = b"") -> bytes:
    return (
        b'{"version": "4", "groupKey": "g", "status": "firing", '
        + extra
        + b'"alerts": [{"status": "firing", "labels": '
        + alert_labels
        + b"}]}"
    )


DEEP_FIELD = "$" + "[0]" * MAX_DEPTH
DEEP_KEYS = ".".join(["a"] * MAX_DEPTH)
# (body, field, words of the reason): the same for every source, since decoding comes first.
HOSTILE = {
    "array 2,000 deep": (b"[" * 2_000 + b"]" * 2_000, DEEP_FIELD, "nested deeper than 64"),
    "array 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, DEEP_FIELD, "nested deeper"),
    "object 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, DEEP_KEYS, "nested"),
    "80-digit truncatedAlerts": (
        alertmanager(extra=b'"truncatedAlerts": ' + b"9" * 80 + b", "),
        "truncatedAlerts",
        "integer of 80 digits is out of range",
    ),
    "5,000-digit truncatedAlerts": (
        alertmanager(extra=b'"truncatedAlerts": ' + b"9" * 5_000 + b", "),
        "truncatedAlerts",
        "integer of 5000 digits is out of range",
    ),
    "lone surrogate in a label": (
        alertmanager(b'{"alertname": "\\ud800"}'),
        "alerts[0].labels.alertname",
        "lone surrogate",
    ),
    "NUL in a label": (
        alertmanager(b'{"alertname": "a\\u0000"}'),
        "alerts[0].labels.alertname",
        "NUL character",
    ),
    "NUL in a label name": (
        alertmanager(b'{"alertname": "x", "a\\u0000": "b"}'),
        'alerts[0].labels["a\\u0000"]',
        "object key holds a NUL",
    ),
    "infinite number": (alertmanager(extra=b'"x": 1e999, '), "x", "number out of range"),
    "NaN": (alertmanager(extra=b'"x": [NaN], '), "x[0]", "NaN is not a JSON number"),
}


@pytest.mark.parametrize("guarded", [False, True], ids=["open", "bearer"])
@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_bodies_get_400_with_path_and_reason_and_store_nothing(
    fuzzed: Server, case: str, guarded: bool
) -> None:
    body, field, reason = HOSTILE[case]
    for source in SOURCES:
        name, headers = (f"{source}-auth", BEARER) if guarded else (source, {})
        answer = fuzzed.post(name, body, **headers)
        assert answer.status_code == 400, (source, answer.text[:300])
        assert answer.json()["field"] == field
        assert reason in answer.json()["error"]
        assert answer.json()["error"].startswith(f"{field}: ")
    assert fuzzed.stored_nothing()
    assert fuzzed.client.get("/readyz").status_code == 200
    # And the server still takes a good body afterwards.
    fine = fuzzed.post("alertmanager", alertmanager())
    assert fine.json()["opened"] == ["INC-0001"], fine.text


def test_hostile_bodies_without_the_token_are_refused_before_reading(fuzzed: Server) -> None:
    body = HOSTILE["array 100,000 deep"][0]
    answer = fuzzed.post("alertmanager-auth", body)
    assert answer.status_code == 401
    assert answer.json()["error"] == "missing credentials: send Authorization: Bearer <token>"
    assert fuzzed.stored_nothing()


def test_long_identities_are_stored_once(fuzzed: Server) -> None:
    """PagerDuty's 255-character dedup_key and a long groupKey: Postgres keeps them too."""
    event = {
        "event_action": "trigger",
        "dedup_key": "d" * 255,
        "payload": {"summary": "disk full", "source": "s" * 300, "severity": "critical"},
    }
    assert fuzzed.post("events", event).json()["opened"] == ["INC-0001"]
    event["payload"]["summary"] = "disk still full"  # type: ignore[index]
    assert fuzzed.post("events", event).json()["incidents"] == ["INC-0001"]
    group = {
        "version": "4",
        "groupKey": "g" * 2_000,
        "alerts": [
            {
                "status": "firing",
                "fingerprint": "f" * 500,
                "labels": {"alertname": "x", "severity": "s" * 100, "service": "v" * 300},
            }
        ],
    }
    assert fuzzed.post("alertmanager", group).json()["opened"] == ["INC-0002"]
    assert fuzzed.post("alertmanager", json.dumps(group).encode() + b" ").json()["incidents"] == [
        "INC-0002"
    ]


def test_fuzzer_generator_in_process(fuzzed: Server) -> None:
    """A few hundred generated bodies per source: no 5xx, each accepted body stored once."""
    accepted = 0
    for source in SOURCES:
        tally = Tally()
        answers: dict[int, tuple[int, object]] = {}
        for index, case in enumerate(fuzz_bodies(source, 200, seed=7)):
            answer = fuzzed.post(case.endpoint, case.body, **case.headers)
            try:
                parsed = answer.json()
            except ValueError:
                parsed = None
            answers[index] = (answer.status_code, parsed)
            tally.add(case, answer.status_code, parsed, 0.0)
            problem = check_answer(case, answer.status_code, parsed, answers)
            if problem:
                tally.problems.append(problem)
        assert tally.problems == [], (source, tally.problems[:5])
        assert not any(label.startswith("5") for label in tally.statuses), tally.statuses
        assert tally.statuses["400"] > 50  # the hostile shapes were refused
        assert tally.statuses["401"] > 0  # and so were requests without a Bearer token
        assert tally.accepted > 0, tally.statuses  # and real bodies got in
        accepted += tally.accepted
    assert fuzzed.count(WebhookDelivery) == accepted
    assert fuzzed.client.get("/readyz").status_code == 200
