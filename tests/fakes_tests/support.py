"""Small helpers for the fake Slack tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_state import Channel


async def slack_error(call: Awaitable[Any]) -> SlackApiError:
    """The SlackApiError a call raises (failing the test if it succeeds)."""
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


async def error_code(call: Awaitable[Any]) -> str:
    error = await slack_error(call)
    assert error.response.status_code == 200
    code = error.response["error"]
    assert isinstance(code, str)
    return code


async def new_channel(client: Any, fake: FakeSlack, name: str, *members: str) -> Channel:
    """A channel the bot created (so it is a member), with ``members`` invited."""
    response = await client.conversations_create(name=name)
    if members:
        await client.conversations_invite(channel=response["channel"]["id"], users=list(members))
    return fake.channel(response["channel"]["id"])
