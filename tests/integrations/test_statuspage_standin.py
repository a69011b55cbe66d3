"""The Statuspage stand-in is held to the vendored description of Statuspage's API v1.

If the stand-in served paths Statuspage does not have, enforced other enums, or accepted what
the description calls invalid, every status page test built on it would prove nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.statuspage import (
    ROUTES,
    FakeStatuspage,
    component_status_enum,
    incident_enum,
    incident_schema,
    resolve,
    spec,
)

KEY = "standin-key"
PAGE = "pagestandin1"
COMPONENT = "cmpstandin01"


@pytest.fixture
def sp() -> Iterator[FakeStatuspage]:
    with FakeStatuspage({KEY}, {PAGE: {COMPONENT: "API"}}) as fake:
        yield fake


def call(
    sp: FakeStatuspage, method: str, path: str, body: Any = None, key: str = KEY
) -> httpx.Response:
    return httpx.request(
        method,
        f"{sp.url}/v1/pages/{PAGE}{path}",
        json=body,
        headers={"Authorization": f"OAuth {key}"},
        timeout=5,
    )


def good() -> dict[str, Any]:
    return {
        "incident": {
            "name": "API is slow",
            "status": "investigating",
            "impact_override": "minor",
            "body": "We are looking into it.",
            "components": {COMPONENT: "degraded_performance"},
            "component_ids": [COMPONENT],
            "metadata": {"warroom": {"incident": "INC-0001"}},
        }
    }


def test_it_serves_only_paths_and_methods_the_description_has() -> None:
    assert spec()["servers"] == [{"url": "https://api.statuspage.io/v1"}]
    for method, path in ROUTES:
        assert method.lower() in spec()["paths"][path], (method, path)
    assert spec()["components"]["securitySchemes"]["api_key"]["name"] == "Authorization"


def test_the_enums_it_enforces_are_the_descriptions() -> None:
    described = resolve(spec()["components"]["schemas"]["Incident"])["properties"]
    assert incident_enum("status") == described["status"]["enum"]
    assert incident_enum("impact_override") == described["impact_override"]["enum"]
    component = resolve(spec()["components"]["schemas"]["Component"])["properties"]
    assert component_status_enum() == component["status"]["enum"]
    assert component_status_enum("PATCH") == component["status"]["enum"]
    assert incident_schema()["required"] == ["name"]


def test_a_valid_incident_is_made_and_listed_as_the_description_shapes_it(
    sp: FakeStatuspage,
) -> None:
    made = call(sp, "POST", "/incidents", good())
    assert made.status_code == 201, made.text
    incident = made.json()
    described = resolve(spec()["components"]["schemas"]["Incident"])["properties"]
    assert set(incident) <= set(described)
    assert (incident["status"], incident["impact"]) == ("investigating", "minor")
    assert sp.component_status(PAGE, COMPONENT) == "degraded_performance"
    (listed,) = call(sp, "GET", "/incidents/unresolved").json()
    assert listed["id"] == incident["id"]
    update = {
        "incident": {
            "status": "resolved",
            "body": "Fixed.",
            "components": {COMPONENT: "operational"},
        }
    }
    assert call(sp, "PATCH", f"/incidents/{incident['id']}", update).status_code == 200
    assert call(sp, "GET", "/incidents/unresolved").json() == []
    assert [
        u["body"]
        for u in call(sp, "GET", f"/incidents/{incident['id']}").json()["incident_updates"]
    ] == [
        "Fixed.",
        "We are looking into it.",
    ]


def mutate(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(good())
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "said"),
    [
        ("incident", KeyError, "incident can't be blank"),
        ("incident.name", KeyError, "name can't be blank"),
        ("incident.status", "down", "status is not included in the list"),
        ("incident.status", "scheduled", "only valid for scheduled maintenances"),
        ("incident.impact_override", "severe", "impact_override is not included in the list"),
        ("incident.name", 42, "name must be of type string"),
        ("incident.component_ids", "x", "component_ids must be of type array"),
        ("incident.components", {COMPONENT: "broken"}, "Component status broken"),
        ("incident.components", {"nope00000000": "major_outage"}, "was not found"),
        ("incident.metadata", {"warroom": "INC-1"}, "top-level values must be objects"),
        ("incident.name", "x" * 256, "Name is too long"),
    ],
)
def test_a_body_the_description_calls_invalid_is_refused_with_statuspages_error_shape(
    sp: FakeStatuspage, path: str, value: Any, said: str
) -> None:
    answer = call(sp, "POST", "/incidents", mutate(path, value))
    assert answer.status_code == 422
    errors = answer.json()["error"]
    assert any(said in e for e in errors), errors
    assert sp.all_incidents(PAGE) == []


def test_keys_pages_and_incidents_it_does_not_know_are_refused(sp: FakeStatuspage) -> None:
    assert call(sp, "POST", "/incidents", good(), key="other").status_code == 401
    assert call(sp, "GET", "/incidents/unresolved", key="other").json() == {
        "error": "Could not authenticate"
    }
    assert call(sp, "PATCH", "/incidents/unknown00000", good()).status_code == 404
    answer = httpx.get(
        f"{sp.url}/v1/pages/otherpage000/incidents", headers={"Authorization": f"OAuth {KEY}"}
    )
    assert answer.status_code == 404


def test_faults_are_injected_before_anything_is_applied() -> None:
    with FakeStatuspage({KEY}, {PAGE: {COMPONENT: "API"}}, fault_rate=1.0, seed=1) as sp:
        codes = {call(sp, "POST", "/incidents", good()).status_code for _ in range(30)}
        assert codes == {420, 429, 500}
        assert sp.all_incidents(PAGE) == []
    with FakeStatuspage({KEY}, {PAGE: {COMPONENT: "API"}}) as sp:
        sp.lose_next()
        assert call(sp, "POST", "/incidents", good()).status_code == 500
        assert len(sp.all_incidents(PAGE)) == 1  # applied, though the answer said otherwise
