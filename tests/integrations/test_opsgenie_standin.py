"""The Opsgenie stand-in is held to Opsgenie's own description of the Alert API.

If the stand-in accepted what Opsgenie refuses (or refused what it accepts), every Opsgenie
paging test built on it would prove nothing: here it serves only the description's paths and
methods, enforces only the description's required fields and enum values (and the limits
Opsgenie documents, on fields the description has), refuses what the description calls invalid
in its error shape, and answers in the shapes the file gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.opsgenie import (
    EXTENSIONS,
    ITEM_LIMITS,
    LIMITS,
    MOST_ITEMS,
    ROUTES,
    FakeOpsgenie,
    action_schema,
    create_schema,
    identifier_types,
    resolve,
    response_schema,
    schema_problems,
    spec,
)

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"
READ_ONLY = "0d4ad0c6-read-only-key"


@pytest.fixture
def og() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie({KEY}, read_only_keys={READ_ONLY}) as fake:
        yield fake


def post(
    og: FakeOpsgenie, path: str, body: Any, *, key: str | None = KEY, **params: str
) -> httpx.Response:
    headers = {"Authorization": f"GenieKey {key}"} if key else {}
    return httpx.post(f"{og.url}{path}", json=body, params=params, headers=headers, timeout=5)


def create(og: FakeOpsgenie, **fields: Any) -> httpx.Response:
    return post(og, "/v2/alerts", {"message": "Checkout is failing", **fields})


def assert_error_shape(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    assert schema_problems(body, response_schema("BadRequest"), closed=False) == {}
    assert set(body) >= {"message", "took", "requestId"}, body
    assert body["message"]
    return body


def test_it_serves_exactly_the_descriptions_paths_and_methods() -> None:
    described = {
        (method.upper(), path) for path, item in spec()["paths"].items() for method in item
    }
    assert described == ROUTES
    assert spec()["securityDefinitions"]["GenieKey"] == {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
    }


def test_what_it_enforces_is_in_the_description() -> None:
    schema = create_schema()
    assert schema["required"] == ["message"]
    properties = set(schema["properties"])
    actions = set(action_schema("acknowledge")["properties"])
    assert actions == set(action_schema("close")["properties"]) == {"user", "note", "source"}
    assert set(LIMITS) <= properties | actions  # documented limits only on described fields
    assert set(MOST_ITEMS) | set(ITEM_LIMITS) <= properties
    assert schema["properties"]["priority"]["enum"] == ["P1", "P2", "P3", "P4", "P5"]
    recipient = resolve({"$ref": "#/definitions/Recipient"})
    assert recipient["required"] == ["type"]
    assert "team" in recipient["properties"]["type"]["enum"]
    assert identifier_types() == ["id", "alias", "tiny"]
    # The only additions: a recipient's name and username, which the file's sub-types carry.
    raw = spec()["definitions"]["Recipient"]["properties"]
    assert set(raw) == {"type", "id"}
    assert set(EXTENSIONS) == {"#/definitions/Recipient"}


def test_a_valid_create_is_accepted_in_the_success_shape_and_kept(og: FakeOpsgenie) -> None:
    answer = create(
        og,
        alias="INC-0001",
        description="details",
        priority="P1",
        responders=[{"type": "team", "name": "sre"}],
        tags=["warroom"],
        details={"incident": "INC-0001"},
        entity="checkout",
        source="warroom",
        user="warroom",
        note="opened",
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert schema_problems(body, response_schema("Accepted"), closed=False) == {}
    assert body["result"] == "Request will be processed"
    assert body["requestId"] == answer.headers["X-Request-ID"]
    (alert,) = og.by_alias("INC-0001")
    assert (alert.status, alert.count, alert.body["priority"]) == ("open", 1, "P1")
    status = httpx.get(
        f"{og.url}/v2/alerts/requests/{body['requestId']}",
        headers={"Authorization": f"GenieKey {KEY}"},
        timeout=5,
    )
    assert status.status_code == 200
    assert status.json()["data"]["isSuccess"] is True
    assert status.json()["data"]["alias"] == "INC-0001"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alias": "INC-1"}, "message"),  # the one required field
        ({"message": 42}, "message"),
        ({"message": "x", "priority": "P0"}, "priority"),
        ({"message": "x", "priority": "critical"}, "priority"),
        ({"message": "x", "responders": [{"name": "sre"}]}, "responders[0].type"),
        ({"message": "x", "responders": [{"type": "squad", "name": "sre"}]}, "responders[0].type"),
        ({"message": "x", "responders": [{"type": "team"}]}, "responders[0]"),
        ({"message": "x", "tags": "warroom"}, "tags"),
        ({"message": "x", "details": {"nested": {"a": "b"}}}, "details.nested"),
        ({"message": "x" * 131}, "message"),
        ({"message": "x", "alias": "a" * 513}, "alias"),
        ({"message": "x", "description": "d" * 15001}, "description"),
        ({"message": "x", "tags": ["t"] * 21}, "tags"),
        ({"message": "x", "responder": [{"type": "team", "name": "sre"}]}, "responder"),
    ],
)
def test_a_create_the_description_calls_invalid_is_refused_with_422(
    og: FakeOpsgenie, body: dict[str, Any], field: str
) -> None:
    answer = post(og, "/v2/alerts", body)
    assert answer.status_code == 422, answer.text
    error = assert_error_shape(answer)
    assert error["message"] == "Request body is not processable. Please check the errors."
    assert field in error["errors"], error
    assert og.alerts == []


def test_a_body_that_is_not_a_json_object_is_a_400(og: FakeOpsgenie) -> None:
    answer = httpx.post(
        f"{og.url}/v2/alerts",
        content=b"[1, 2",
        headers={"Authorization": f"GenieKey {KEY}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert assert_error_shape(answer)["message"] == "Invalid JSON body"


def test_keys_are_checked_as_opsgenie_checks_them(og: FakeOpsgenie) -> None:
    for key in (None, "not-a-key"):
        answer = post(og, "/v2/alerts", {"message": "x"}, key=key)
        assert answer.status_code == 401
        assert assert_error_shape(answer)["message"] == "Could not authenticate"
    bearer = httpx.post(
        f"{og.url}/v2/alerts",
        json={"message": "x"},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    assert bearer.status_code == 401  # only the GenieKey scheme
    assert post(og, "/v2/alerts", {"message": "x"}, key=READ_ONLY).status_code == 403
    assert og.alerts == []


def test_an_alias_deduplicates_until_its_alert_is_closed(og: FakeOpsgenie) -> None:
    assert create(og, alias="INC-7").status_code == 202
    assert create(og, alias="INC-7").status_code == 202
    (alert,) = og.by_alias("INC-7")
    assert alert.count == 2
    ack = post(og, "/v2/alerts/INC-7/acknowledge", {"note": "on it"}, identifierType="alias")
    assert ack.status_code == 202
    assert post(og, "/v2/alerts/INC-7/acknowledge", {}, identifierType="alias").status_code == 202
    assert create(og, alias="INC-7").status_code == 202  # acknowledged is not closed
    assert alert.count == 3
    assert post(og, "/v2/alerts/INC-7/close", {}, identifierType="alias").status_code == 202
    assert post(og, "/v2/alerts/INC-7/close", {}, identifierType="alias").status_code == 202
    assert create(og, alias="INC-7").status_code == 202  # a new alert for a closed alias
    assert og.history("INC-7") == [["open", "acked", "closed"], ["open"]]
    assert og.by_alias("INC-7")[0].notes == ["on it"]


def test_actions_check_the_identifier_type_the_alert_and_the_body(og: FakeOpsgenie) -> None:
    create(og, alias="INC-8")
    # Without identifierType the identifier is an id (the description's default).
    missing = post(og, "/v2/alerts/INC-8/acknowledge", {})
    assert missing.status_code == 404
    assert assert_error_shape(missing)["message"] == "Alert does not exist"
    wrong = post(og, "/v2/alerts/INC-8/close", {}, identifierType="name")
    assert wrong.status_code == 400
    assert "identifierType" in assert_error_shape(wrong)["message"]
    unknown = post(og, "/v2/alerts/INC-9/close", {}, identifierType="alias")
    assert unknown.status_code == 404
    bad = post(og, "/v2/alerts/INC-8/close", {"note": 3}, identifierType="alias")
    assert bad.status_code == 422
    assert "note" in bad.json()["errors"]
    long_user = post(og, "/v2/alerts/INC-8/close", {"user": "u" * 101}, identifierType="alias")
    assert long_user.status_code == 422
    (alert,) = og.by_alias("INC-8")
    by_tiny = post(og, f"/v2/alerts/{alert.tiny_id}/close", {}, identifierType="tiny")
    assert by_tiny.status_code == 202
    assert og.history("INC-8") == [["open", "closed"]]


def test_injected_faults_come_before_the_request_is_applied() -> None:
    with FakeOpsgenie({KEY}, fault_rate=1.0, seed=3, retry_after=7) as og:
        codes = set()
        for _ in range(20):
            answer = create(og, alias="INC-1")
            codes.add(answer.status_code)
            assert_error_shape(answer)
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == "7"
        assert codes == {429, 500}
        assert og.alerts == []
        assert sum(og.faults.values()) == 20


def test_scripted_refusals_answer_in_opsgenies_shape_before_applying(og: FakeOpsgenie) -> None:
    og.refusals = [400, 422]
    assert create(og, alias="INC-1").status_code == 400
    assert create(og, alias="INC-1").status_code == 422
    assert create(og, alias="INC-1").status_code == 202
    assert og.history("INC-1") == [["open"]]
