"""Arbitrary bytes and JSON at every endpoint: 2xx or 4xx, never a 5xx.

Hostile shapes too (nesting thousands deep, integers of thousands of digits, non-finite
numbers, lone surrogates, NUL characters, mixed types), alone or inside a real body: never
a 5xx, a body sent twice is stored at most once, and ``/readyz`` still answers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, create_engine, func, select
from starlette.testclient import TestClient

from bench.fuzz_webhooks import splice
from bot.config.settings import load_settings
from bot.store.models import WebhookDelivery
from handlers.app import create_app
from tests.intake.alerts.payloads import KNOWN_BODIES, load, source_of

ENDPOINTS = ["alertmanager", "grafana", "pagerduty", "datadog", "events"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def mutations(body: object) -> st.SearchStrategy[object]:
    """The real body with one key dropped or one value replaced by an arbitrary one."""
    if not isinstance(body, dict) or not body:
        return st.just(body)
    keys = sorted(body)

    def mutate(args: tuple[str, bool, object]) -> object:
        key, drop, value = args
        copy = dict(body)
        if drop:
            copy.pop(key)
        else:
            copy[key] = value
        return copy

    return st.tuples(st.sampled_from(keys), st.booleans(), json_values).map(mutate)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    path = tmp_path_factory.mktemp("props") / "props.db"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture(scope="module")
def client(db_path: Path):
    path = db_path
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("WARROOM_", "SLACK_"))}
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    try:
        with TestClient(create_app(load_settings()), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        os.environ.pop("DATABASE_URL")
        os.environ.update(saved)


CHECKS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def post(client: TestClient, name: str, data: bytes, content_type: str = "application/json"):
    answer = client.post(f"/webhooks/{name}", content=data, headers={"content-type": content_type})
    assert answer.status_code < 500, (name, data[:200], answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json"
    if answer.status_code >= 400:
        assert answer.json()["error"]
    return answer


@CHECKS
@given(name=st.sampled_from(ENDPOINTS), data=st.binary(max_size=300))
def test_arbitrary_bytes(client: TestClient, name: str, data: bytes) -> None:
    post(client, name, data)


@CHECKS
@given(name=st.sampled_from(ENDPOINTS), value=json_values)
def test_arbitrary_json(client: TestClient, name: str, value: object) -> None:
    post(client, name, json.dumps(value).encode())


@CHECKS
@given(data=st.data())
def test_mutated_real_bodies(client: TestClient, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([n for n in KNOWN_BODIES if not n.endswith(".txt")]))
    body = data.draw(mutations(load(name)))
    post(client, source_of(name), json.dumps(body).encode())


@CHECKS
@given(content_type=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_arbitrary_content_types(client: TestClient, content_type: str) -> None:
    post(client, "alertmanager", b"{}", content_type)


# Hostile JSON text: what json.dumps cannot write (too deep, too long) is built as text.
depths = st.integers(min_value=2_000, max_value=100_000)
deep_text = st.one_of(
    depths.map(lambda n: "[" * n + "]" * n),
    depths.map(lambda n: '{"a":' * n + "1" + "}" * n),
    depths.map(lambda n: "[" * n),
    st.integers(min_value=65, max_value=1_999).map(lambda n: "[" * n + "]" * n),
)
huge_ints = st.builds(
    lambda sign, digits: sign + "9" * digits,
    st.sampled_from(["", "-"]),
    st.one_of(st.integers(min_value=21, max_value=100), st.integers(4_250, 6_000)),
)
non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-2e999"])
plain = st.text("ab é", max_size=3)
surrogate_text = st.builds(  # one surrogate between ordinary characters: never a pair
    lambda before, code, after: before + chr(code) + after,
    plain,
    st.integers(min_value=0xD800, max_value=0xDFFF),
    plain,
)
nul_text = st.text(max_size=5).map(lambda t: t + "\x00" + t)
hostile_strings = st.one_of(surrogate_text, nul_text).map(json.dumps)  # \ud800, \u0000
mixed = json_values.map(json.dumps)
hostile_text = st.one_of(deep_text, huge_ints, non_finite, hostile_strings)


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(endpoint, body, whether the body must be refused)."""
    name = draw(st.sampled_from(ENDPOINTS))
    how = draw(st.sampled_from(["alone", "in a real body", "as a key", "mixed"]))
    if how == "mixed":
        real = draw(st.sampled_from([n for n in KNOWN_BODIES if not n.endswith(".txt")]))
        body = load(real)
        assert isinstance(body, dict)
        body[draw(st.sampled_from(sorted(body)))] = draw(json_values)
        return name, json.dumps(body).encode(), False
    if how == "alone":
        return name, draw(hostile_text).encode(), True
    real = draw(st.sampled_from([n for n in KNOWN_BODIES if source_of(n) == name]))
    body = load(real)
    if how == "as a key":
        assert isinstance(body, dict)
        key = draw(hostile_strings)
        text = json.dumps(body).encode()
        return name, text.replace(b"{", b"{" + key.encode() + b": 1, ", 1), True
    paths = _value_paths(body)
    path = draw(st.sampled_from(paths))
    return name, splice(body, path, draw(hostile_text).encode()), True


def _value_paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    items: list[tuple[object, object]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    found: list[tuple[object, ...]] = []
    for key, item in items:
        found.append((*prefix, key))
        found.extend(_value_paths(item, (*prefix, key)))
    return found


def deliveries(path: Path) -> int:
    engine = create_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        value = session.exec(select(func.count()).select_from(WebhookDelivery)).one()
    engine.dispose()
    return int(value)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=hostile_bodies())
def test_hostile_bodies_never_500_never_stored_twice(
    client: TestClient, db_path: Path, case: tuple[str, bytes, bool]
) -> None:
    name, data, must_refuse = case
    before = deliveries(db_path)
    first = post(client, name, data)
    if must_refuse:
        assert first.status_code == 400, (name, data[:200], first.text)
        assert first.json()["field"]
        assert first.json()["error"].startswith(first.json()["field"] + ": ")
    again = post(client, name, data)
    stored = deliveries(db_path) - before
    if first.status_code == 200:
        assert again.json()["status"] == "duplicate"
        assert stored == (0 if first.json()["status"] == "duplicate" else 1)
    else:
        assert again.status_code == first.status_code
        assert stored == 0
    assert client.get("/readyz").status_code == 200
