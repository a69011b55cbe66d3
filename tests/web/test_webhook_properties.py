"""Arbitrary bytes and JSON at every endpoint: 2xx or 4xx, never a 5xx."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.config.settings import load_settings
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
def client(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path):
    path = tmp_path_factory.mktemp("props") / "props.db"
    shutil.copy(sqlite_template, path)
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
