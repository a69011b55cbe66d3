"""chat.* against the fake: messages, Block Kit limits, threads, edits, ephemeral, permalinks."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_state import ALICE, BOT_USER_ID, CAROL
from tests.fakes_tests.support import error_code, new_channel, slack_error


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def button(**overrides: Any) -> dict[str, Any]:
    return {"type": "button", "text": plain("Run"), "action_id": "run", **overrides}


def confirm(**overrides: Any) -> dict[str, Any]:
    dialog = {
        "title": plain("Sure?"),
        "text": plain("This terminates 12 connections."),
        "confirm": plain("Terminate"),
        "deny": plain("Cancel"),
    }
    return {**dialog, **overrides}


async def test_post_message_stores_it_and_returns_ts(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-1")

    first = await client.chat_postMessage(channel=channel.id, text="first")
    second = await client.chat_postMessage(
        channel=channel.id, text="card", blocks=[section("*P1* db down")]
    )

    assert first["channel"] == channel.id
    assert first["message"]["text"] == "first"
    assert first["message"]["user"] == BOT_USER_ID
    assert first["message"]["bot_id"]
    assert float(second["ts"]) > float(first["ts"])
    assert len(first["ts"].split(".")[1]) == 6
    stored = fake.messages(channel.id)
    assert [m.text for m in stored] == ["first", "card"]
    assert stored[1].blocks is not None
    assert stored[1].blocks[0]["text"]["text"] == "*P1* db down"
    assert stored[1].blocks[0]["block_id"]


async def test_post_message_by_channel_name(client: AsyncWebClient, fake: FakeSlack) -> None:
    await client.chat_postMessage(channel="#incidents", text="hello")
    assert [m.text for m in fake.messages("incidents")] == ["hello"]


async def test_post_message_errors(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-2")
    general = fake.channel_by_name("general")

    assert await error_code(client.chat_postMessage(channel="C0NOTHERE1", text="x")) == (
        "channel_not_found"
    )
    assert await error_code(client.chat_postMessage(channel=general.id, text="x")) == (
        "not_in_channel"
    )
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        assert await error_code(client.chat_postMessage(channel=channel.id, text="")) == "no_text"
    assert await error_code(client.chat_postMessage(channel=channel.id, text="x" * 40_001)) == (
        "msg_too_long"
    )
    assert fake.messages(channel.id) == []


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section("x")] * 51, "/blocks"),
        ([{"type": "header", "text": plain("h" * 151)}], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
        ([section("s" * 3001)], "/blocks/0/text/text"),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
            "/blocks/0/fields",
        ),
        (
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            "/blocks/0/fields/0/text",
        ),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "actions", "elements": [button(text=plain("b" * 76))]}], "/text/text"),
        ([{"type": "actions", "elements": [button(value="v" * 2001)]}], "/elements/0/value"),
        (
            [{"type": "actions", "elements": [button(confirm=confirm(title=plain("t" * 101)))]}],
            "/confirm/title/text",
        ),
        (
            [{"type": "actions", "elements": [button(confirm=confirm(text=plain("t" * 301)))]}],
            "/confirm/text/text",
        ),
        (
            [{"type": "actions", "elements": [button(confirm=confirm(deny=plain("d" * 31)))]}],
            "/confirm/deny/text",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [button(confirm={"title": plain("t"), "text": plain("x")})],
                }
            ],
            "/confirm",
        ),
        ([{"type": "banner", "text": plain("x")}], "/blocks/0/type"),
        (
            [section("a") | {"block_id": "x"}, section("b") | {"block_id": "x"}],
            "/blocks/1/block_id",
        ),
    ],
)
async def test_invalid_blocks_are_refused_with_json_pointers(
    client: AsyncWebClient, fake: FakeSlack, blocks: list[dict[str, Any]], pointer: str
) -> None:
    channel = await new_channel(client, fake, "inc-blocks")

    failure = await slack_error(
        client.chat_postMessage(channel=channel.id, text="t", blocks=blocks)
    )

    assert failure.response["error"] == "invalid_blocks"
    messages = failure.response["response_metadata"]["messages"]
    assert all(m.startswith("[ERROR] ") for m in messages)
    assert any(pointer in m for m in messages), messages
    assert fake.messages(channel.id) == []


async def test_valid_rich_blocks_pass(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-rich")
    blocks = [
        {"type": "header", "text": plain("h" * 150)},
        section("s" * 3000) | {"accessory": button(style="danger", confirm=confirm())},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ctx"}]},
        {"type": "actions", "elements": [button(value="v" * 2000, text=plain("b" * 75))]},
        *[{"type": "divider"}] * 44,
    ]
    response = await client.chat_postMessage(channel=channel.id, text="t", blocks=blocks)
    assert len(response["message"]["blocks"]) == 50


async def test_blocks_that_are_not_json_are_invalid_blocks_format(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-fmt")
    call = client.api_call(
        "chat.postMessage", data={"channel": channel.id, "text": "t", "blocks": "[{nope"}
    )
    assert await error_code(call) == "invalid_blocks_format"


async def test_thread_replies(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-3")
    parent = await client.chat_postMessage(channel=channel.id, text="parent")

    reply = await client.chat_postMessage(channel=channel.id, text="reply", thread_ts=parent["ts"])
    nested = await client.chat_postMessage(channel=channel.id, text="again", thread_ts=reply["ts"])

    assert reply["message"]["thread_ts"] == parent["ts"]
    assert nested["message"]["thread_ts"] == parent["ts"]
    assert [m.text for m in fake.thread(channel.id, parent["ts"])] == ["reply", "again"]


async def test_reply_to_a_missing_thread_is_loud_in_strict_mode(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-4")

    failure = await slack_error(
        client.chat_postMessage(channel=channel.id, text="lost", thread_ts="1600000000.000100")
    )

    assert failure.response.status_code == 400
    assert failure.response["error"] == "fake_slack_strict_violation"
    assert "names no message" in failure.response["problems"][0]
    fake.client_violations.clear()


async def test_reply_to_a_missing_thread_is_lost_as_in_slack(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    fake.strict = False
    channel = await new_channel(client, fake, "inc-5")

    response = await client.chat_postMessage(
        channel=channel.id, text="lost", thread_ts="1600000000.000100"
    )

    assert response["ok"] is True
    assert fake.messages(channel.id) == []
    assert [m.text for m in fake.lost_replies] == ["lost"]


async def test_update_edits_in_place_and_keeps_history(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-6")
    posted = await client.chat_postMessage(
        channel=channel.id, text="v1", blocks=[section("status: investigating")]
    )

    updated = await client.chat_update(channel=channel.id, ts=posted["ts"], text="v2")
    await client.chat_update(
        channel=channel.id, ts=posted["ts"], text="v3", blocks=[section("status: mitigated")]
    )

    assert updated["ts"] == posted["ts"]
    assert updated["message"]["edited"]["user"] == BOT_USER_ID
    [message] = fake.messages(channel.id)
    assert message.ts == posted["ts"]
    assert message.text == "v3"
    assert message.blocks is not None
    assert message.blocks[0]["text"]["text"] == "status: mitigated"
    assert [e["text"] for e in message.edits] == ["v1", "v2"]
    assert message.edits[1]["blocks"][0]["text"]["text"] == "status: investigating"


async def test_update_errors(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-7", ALICE.id)
    human = fake.post_as_user(channel.id, ALICE.id, "I'm on it")

    assert await error_code(client.chat_update(channel=channel.id, ts=human.ts, text="x")) == (
        "cant_update_message"
    )
    assert await error_code(
        client.chat_update(channel=channel.id, ts="1600000000.000001", text="x")
    ) == ("message_not_found")
    assert human.text == "I'm on it"


async def test_post_ephemeral(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-8", ALICE.id)

    response = await client.chat_postEphemeral(channel=channel.id, user=ALICE.id, text="only you")

    assert response["message_ts"]
    assert [(e.user, e.text) for e in fake.ephemerals] == [(ALICE.id, "only you")]
    assert fake.messages(channel.id) == []
    assert await error_code(
        client.chat_postEphemeral(channel=channel.id, user=CAROL.id, text="x")
    ) == ("user_not_in_channel")


async def test_get_permalink(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-9")
    posted = await client.chat_postMessage(channel=channel.id, text="card")

    response = await client.chat_getPermalink(channel=channel.id, message_ts=posted["ts"])

    digits = posted["ts"].replace(".", "")
    assert response["permalink"].endswith(f"/archives/{channel.id}/p{digits}")
    assert await error_code(
        client.chat_getPermalink(channel=channel.id, message_ts="1600000000.000001")
    ) == ("message_not_found")
