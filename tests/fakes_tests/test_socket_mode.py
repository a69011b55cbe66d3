"""The fake's Socket Mode: apps.connections.open's tokens, and the WebSocket protocol."""

from __future__ import annotations

import json

import aiohttp
import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.fakes_tests.support import error_code


async def test_connections_open_takes_an_app_level_token_only(fake: FakeSlack) -> None:
    client = AsyncWebClient(base_url=fake.base_url)
    opened = await client.apps_connections_open(app_token=APP_TOKEN)
    assert opened["url"].startswith(f"ws://{fake.base_url.split('/')[2]}/socket/")

    assert await error_code(client.apps_connections_open(app_token=BOT_TOKEN)) == (
        "not_allowed_token_type"
    )
    assert await error_code(client.apps_connections_open(app_token="xapp-1-nope")) == (
        "invalid_auth"
    )
    app_client = AsyncWebClient(token=APP_TOKEN, base_url=fake.base_url)
    channel = fake.channel_by_name("incidents").id
    assert await error_code(app_client.chat_postMessage(channel=channel, text="hi")) == (
        "not_allowed_token_type"
    )
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        in_body = await http.post("apps.connections.open", data={"token": APP_TOKEN})
    assert in_body.json() == {"ok": False, "error": "invalid_auth"}  # header only, says Slack


async def test_hello_envelope_and_ack(fake: FakeSlack) -> None:
    client = AsyncWebClient(base_url=fake.base_url)
    url = (await client.apps_connections_open(app_token=APP_TOKEN))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = json.loads(await ws.receive_str(timeout=5))
        assert hello["type"] == "hello"
        assert hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": fake.workspace.team.app_id}
        assert "host" in hello["debug_info"]

        payload = {"command": "/incident", "text": "list"}
        envelope_id = await fake.socket_mode.send_async("slash_commands", payload)
        envelope = json.loads(await ws.receive_str(timeout=5))
        assert envelope == {
            "envelope_id": envelope_id,
            "type": "slash_commands",
            "payload": payload,
            "accepts_response_payload": True,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        await ws.send_str(json.dumps({"envelope_id": envelope_id, "payload": {"text": "ok"}}))
        ack = await fake.socket_mode.wait_for_ack_async(envelope_id)
        assert ack.payload == {"text": "ok"}

        event_id = await fake.socket_mode.send_async("events_api", {"type": "event_callback"})
        assert json.loads(await ws.receive_str(timeout=5))["accepts_response_payload"] is False
        with pytest.raises(TimeoutError):
            await fake.socket_mode.wait_for_ack_async(event_id, seconds=0.2)

    # A URL is good for one connection.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)
    assert fake.socket_mode.refused == 1
    assert fake.socket_mode.unexpected == []
