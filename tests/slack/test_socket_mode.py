"""Socket Mode end to end: warroom's real app connects to the fake Slack over a WebSocket.

The fake answers apps.connections.open with a one-time WebSocket URL on loopback, says
``hello``, pushes envelopes as Slack does and records the app's acks; warroom runs its real
ASGI app (``create_app(..., socket_mode=True)``) with Bolt's aiohttp Socket Mode handler.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.errors import ConfigError
from handlers.app import create_app
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, TEAM_ID
from tests.waiting import wait_for

ACK_WITHIN_S = 3.0  # Slack's deadline for an envelope's ack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as served:
        yield served


@pytest.fixture
def socket_env(database_url: str, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> FakeSlack:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)  # no signing secret: Socket Mode only
    monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
    monkeypatch.setenv("WARROOM_SLACK__BROADCAST_CHANNEL", fake.channel_by_name("incidents").id)
    return fake


def slash_command(fake: FakeSlack, text: str, *, channel: str, hook: str) -> dict[str, Any]:
    """A slash command's payload as Slack sends it over Socket Mode."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "warroom-test",
        "channel_id": channel,
        "channel_name": fake.channel(channel).name,
        "user_id": ALICE.id,
        "user_name": ALICE.name,
        "command": "/incident",
        "text": text,
        "api_app_id": fake.workspace.team.app_id,
        "is_enterprise_install": "false",
        "response_url": fake.response_url(hook),
        "trigger_id": fake.issue_trigger_id(ALICE.id),
    }


def incident_channels(fake: FakeSlack) -> list[str]:
    return sorted(c.name for c in fake.workspace.channels.values() if c.name.startswith("inc-"))


def test_slash_command_over_socket_mode(socket_env: FakeSlack) -> None:
    fake = socket_env
    with TestClient(create_app(load_settings(), socket_mode=True)):
        fake.socket_mode.wait_connected()
        (opened,) = fake.calls_to("apps.connections.open")
        assert opened.ok
        assert opened.caller == fake.workspace.team.app_id  # authenticated by the xapp- token
        assert opened.response["url"].startswith("ws://127.0.0.1:")
        assert fake.socket_mode.hellos == 1

        general = fake.channel_by_name("general").id
        payload = slash_command(
            fake, 'declare "Checkout errors" sev:P2', channel=general, hook="s1"
        )
        sent = time.monotonic()
        envelope_id = fake.socket_send("slash_commands", payload)
        ack = fake.wait_for_ack(envelope_id, timeout=ACK_WITHIN_S)
        assert ack.at - sent < ACK_WITHIN_S
        assert not ack.payload  # an empty ack: the work runs after it

        name = wait_for("the incident channel", lambda: incident_channels(fake))
        assert len(name) == 1
        assert name[0].endswith("-0001-checkout-errors")
        channel = fake.channel_by_name(name[0])
        wait_for("the card to be pinned", lambda: fake.pins(channel.id))
        assert ALICE.id in fake.members(channel.id)

        # Slack redelivers an envelope it thinks was not acked (retry_attempt counts up).
        retried = fake.socket_send(
            "slash_commands",
            payload,
            envelope_id=envelope_id,
            retry_attempt=1,
            retry_reason="timeout",
        )
        assert retried == envelope_id
        wait_for("the retry's ack", lambda: len(fake.socket_mode.acks_for(envelope_id)) == 2)
        assert not fake.socket_mode.acks_for(envelope_id)[1].payload  # an empty ack again
        time.sleep(1.0)  # give a second declaration the time to show up
        # The redelivered envelope is recognised: no second incident is declared.
        assert len(incident_channels(fake)) == 1
        assert not fake.socket_mode.unexpected
    assert fake.socket_mode.connected == 0  # the app closed its connection on shutdown
    fake.assert_clean()


def test_event_retry_over_socket_mode_is_handled_once(socket_env: FakeSlack) -> None:
    fake = socket_env
    with TestClient(create_app(load_settings(), socket_mode=True)):
        fake.socket_mode.wait_connected()
        general = fake.channel_by_name("general").id
        declare = slash_command(fake, "declare Cache failure sev:P2", channel=general, hook="s2")
        fake.wait_for_ack(fake.socket_send("slash_commands", declare))
        channel = wait_for("the channel", lambda: incident_channels(fake))[0]
        channel_id = fake.channel_by_name(channel).id
        wait_for("the card", lambda: fake.pins(channel_id))
        message = fake.post_as_user(channel_id, ALICE.id, "redis maxmemory is 0: eviction off")
        event = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": fake.workspace.team.app_id,
            "type": "event_callback",
            "event_id": "Ev0SOCKET1",
            "event_time": int(time.time()),
            "event": {
                "type": "reaction_added",
                "user": ALICE.id,
                "reaction": "pushpin",
                "item": {"type": "message", "channel": channel_id, "ts": message.ts},
                "event_ts": message.ts,
            },
        }
        first = fake.socket_send("events_api", event)
        fake.wait_for_ack(first, timeout=ACK_WITHIN_S)
        again = fake.socket_send(
            "events_api", event, envelope_id=first, retry_attempt=1, retry_reason="timeout"
        )
        wait_for("the retry's ack", lambda: len(fake.socket_mode.acks_for(again)) == 2)

        from click.testing import CliRunner

        from handlers.cli import cli

        def pinned() -> list[dict[str, Any]]:
            result = CliRunner().invoke(cli, ["incident", "show", "INC-0001", "--json"])
            return [e for e in json.loads(result.output)["timeline"] if e["kind"] == "pinned"]

        wait_for("the pinned note", pinned)
        time.sleep(0.5)
        assert len(pinned()) == 1
    fake.assert_clean()


def test_a_bot_token_as_app_token_fails_at_start(
    socket_env: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = socket_env
    monkeypatch.setenv("SLACK_APP_TOKEN", BOT_TOKEN)
    started = time.monotonic()
    with (
        pytest.raises(ConfigError, match="xapp-"),
        TestClient(create_app(load_settings(), socket_mode=True)),
    ):
        pass
    assert time.monotonic() - started < 10
    assert fake.socket_mode.hellos == 0


def test_an_unknown_app_token_fails_at_start(
    socket_env: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = socket_env
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A0WARROOM1-1-revoked")
    with (
        pytest.raises(ConfigError, match="invalid_auth"),
        TestClient(create_app(load_settings(), socket_mode=True)),
    ):
        pass
    (call,) = fake.calls_to("apps.connections.open")
    assert call.error == "invalid_auth"
    assert fake.socket_mode.hellos == 0
