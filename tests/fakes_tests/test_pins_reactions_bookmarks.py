"""pins.*, reactions.add and bookmarks.* against the fake."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_state import BOT_USER_ID
from tests.fakes_tests.support import error_code, new_channel


async def test_pin_a_message_once(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-1")
    card = await client.chat_postMessage(channel=channel.id, text="incident card")

    await client.pins_add(channel=channel.id, timestamp=card["ts"])
    listed = await client.pins_list(channel=channel.id)

    assert [m.ts for m in fake.pins(channel.id)] == [card["ts"]]
    assert listed["items"][0]["message"]["ts"] == card["ts"]
    assert listed["items"][0]["created_by"] == BOT_USER_ID
    assert await error_code(client.pins_add(channel=channel.id, timestamp=card["ts"])) == (
        "already_pinned"
    )


async def test_pin_errors(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-2")

    assert await error_code(client.pins_add(channel=channel.id, timestamp="1600000000.000001")) == (
        "message_not_found"
    )
    assert await error_code(client.pins_add(channel=channel.id, timestamp="yesterday")) == (
        "bad_timestamp"
    )
    assert await error_code(client.pins_add(channel=channel.id)) == "no_item_specified"
    assert fake.pins(channel.id) == []


async def test_react_once(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-3")
    card = await client.chat_postMessage(channel=channel.id, text="ack?")

    await client.reactions_add(channel=channel.id, timestamp=card["ts"], name="eyes")

    [message] = fake.messages(channel.id)
    assert message.reactions == {"eyes": [BOT_USER_ID]}
    assert await error_code(
        client.reactions_add(channel=channel.id, timestamp=card["ts"], name="eyes")
    ) == ("already_reacted")
    assert await error_code(
        client.reactions_add(channel=channel.id, timestamp=card["ts"], name="Not An Emoji")
    ) == ("invalid_name")


async def test_bookmark_a_link(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-4")

    added = await client.bookmarks_add(
        channel_id=channel.id, title="Runbook", type="link", link="https://wiki.example.com/rb/db"
    )
    listed = await client.bookmarks_list(channel_id=channel.id)

    assert added["bookmark"]["title"] == "Runbook"
    assert [b["link"] for b in listed["bookmarks"]] == ["https://wiki.example.com/rb/db"]
    assert fake.bookmarks(channel.id)[0]["id"] == added["bookmark"]["id"]


@pytest.mark.parametrize("link", ["not a url", "ftp://example.com/x", "https://", "javascript:x"])
async def test_bookmark_refuses_bad_links(
    client: AsyncWebClient, fake: FakeSlack, link: str
) -> None:
    channel = await new_channel(client, fake, "inc-5")

    code = await error_code(
        client.bookmarks_add(channel_id=channel.id, title="x", type="link", link=link)
    )

    assert code == "invalid_link"
    assert fake.bookmarks(channel.id) == []
