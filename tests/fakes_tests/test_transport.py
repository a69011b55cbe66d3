"""The HTTP side, with httpx directly: tokens, body encodings, unknown methods, the call record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.fakes.slack_api import BOT_TOKEN, FakeSlack, create_fake_slack
from tests.fakes.slack_state import ALICE, BOT_USER_ID

BEARER = {"Authorization": f"Bearer {BOT_TOKEN}"}


@pytest.fixture
async def http(fake: FakeSlack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "not_authed"),
        ({"Authorization": "Bearer"}, "not_authed"),
        ({"Authorization": BOT_TOKEN}, "not_authed"),
        ({"Authorization": "Bearer xoxb-not-a-real-token"}, "invalid_auth"),
    ],
)
async def test_auth_errors_are_http_200(
    http: httpx.AsyncClient, fake: FakeSlack, headers: dict[str, str], error: str
) -> None:
    response = await http.post("auth.test", headers=headers)

    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": error}
    assert fake.calls[-1].caller is None


async def test_form_encoded_body_with_token_field(http: httpx.AsyncClient, fake: FakeSlack) -> None:
    response = await http.post("conversations.create", data={"token": BOT_TOKEN, "name": "inc-f"})

    assert response.json()["ok"] is True
    call = fake.calls[-1]
    assert call.args == {"name": "inc-f"}
    assert call.caller == BOT_USER_ID
    assert call.content_type.startswith("application/x-www-form-urlencoded")


async def test_json_body_needs_the_header_for_its_token(
    http: httpx.AsyncClient, fake: FakeSlack
) -> None:
    refused = await http.post("conversations.create", json={"token": BOT_TOKEN, "name": "inc-j"})
    accepted = await http.post("conversations.create", json={"name": "inc-j"}, headers=BEARER)

    assert refused.json() == {"ok": False, "error": "not_authed"}
    assert accepted.json()["channel"]["name"] == "inc-j"
    assert fake.channel_by_name("inc-j")


async def test_query_string_arguments_on_get(http: httpx.AsyncClient) -> None:
    response = await http.get("users.info", params={"user": ALICE.id}, headers=BEARER)
    assert response.json()["user"]["name"] == "alice"


async def test_unknown_method_is_404_even_without_token(
    http: httpx.AsyncClient, fake: FakeSlack
) -> None:
    response = await http.post("chat.postMesage")

    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error": "unknown_method",
        "req_method": "chat.postMesage",
    }
    assert fake.calls_by_method["chat.postMesage"] == 1


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (b"{not json", "application/json", "invalid_json"),
        (b"[1, 2]", "application/json", "json_not_object"),
        (b"<xml/>", "application/xml", "invalid_post_type"),
    ],
)
async def test_bad_bodies(
    http: httpx.AsyncClient, content: bytes, content_type: str, error: str
) -> None:
    headers = {**BEARER, "Content-Type": content_type}
    response = await http.post("auth.test", content=content, headers=headers)
    assert response.json() == {"ok": False, "error": error}


async def test_every_call_is_recorded(http: httpx.AsyncClient, fake: FakeSlack) -> None:
    await http.post("conversations.create", data={"name": "inc-r"}, headers=BEARER)
    await http.post("conversations.create", data={"name": "inc-r"}, headers=BEARER)

    first, second = fake.calls_to("conversations.create")
    assert (first.status, first.ok, first.error) == (200, True, None)
    assert (second.ok, second.error) == (False, "name_taken")
    assert second.response == {"ok": False, "error": "name_taken"}
    assert second.headers["X-Slack-Req-Id"]
    assert fake.calls_by_method == {"conversations.create": 2}


async def test_in_process_with_asgi_transport() -> None:
    fake = create_fake_slack()
    transport = httpx.ASGITransport(app=fake.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://slack.test/api/") as http:
        response = await http.post("conversations.create", data={"name": "inc-a"}, headers=BEARER)

    assert response.json()["ok"] is True
    assert fake.channel_by_name("inc-a")
    fake.assert_clean()
