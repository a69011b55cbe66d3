"""conversations.* against the fake, through slack_sdk's AsyncWebClient over loopback HTTP."""

from __future__ import annotations

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_state import ALICE, BOB, BOT_USER_ID, CAROL
from tests.fakes_tests.support import error_code, new_channel, slack_error


async def test_create_makes_a_public_channel_with_the_bot_in_it(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    response = await client.conversations_create(name="inc-42-db-down")

    channel = response["channel"]
    assert channel["name"] == "inc-42-db-down"
    assert channel["is_private"] is False
    assert channel["is_member"] is True
    assert channel["creator"] == BOT_USER_ID
    stored = fake.channel_by_name("inc-42-db-down")
    assert stored.id == channel["id"]
    assert fake.members(stored.id) == [BOT_USER_ID]


async def test_create_private_channel_is_hidden_from_outsiders(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    response = await client.conversations_create(name="inc-secret", is_private=True)

    assert response["channel"]["is_private"] is True
    assert fake.channel_by_name("inc-secret").is_private
    info = await client.conversations_info(channel=response["channel"]["id"])
    assert info["channel"]["is_private"] is True


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "invalid_name_required"),
        ("a" * 81, "invalid_name_maxlength"),
        ("Inc-42", "invalid_name_specials"),
        ("inc 42", "invalid_name_specials"),
        ("inc#42", "invalid_name_specials"),
        ("inc.42", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
        ("_-_", "invalid_name_punctuation"),
    ],
)
async def test_create_refuses_bad_names_with_slacks_codes(
    fake: FakeSlack, client: AsyncWebClient, name: str, error: str
) -> None:
    assert await error_code(client.conversations_create(name=name)) == error
    assert [c.name for c in fake.workspace.channels.values()] == ["general", "incidents"]


async def test_create_accepts_the_longest_allowed_name(client: AsyncWebClient) -> None:
    name = "inc_" + "9" * 76
    response = await client.conversations_create(name=name)
    assert response["channel"]["name"] == name


async def test_name_taken_also_for_archived_channels(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    assert await error_code(client.conversations_create(name="general")) == "name_taken"
    channel = await new_channel(client, fake, "inc-old")
    await client.conversations_archive(channel=channel.id)

    assert await error_code(client.conversations_create(name="inc-old")) == "name_taken"
    assert fake.channel_by_name("inc-old").is_archived


async def test_invite_takes_comma_separated_users(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-1")

    response = await client.conversations_invite(channel=channel.id, users=f"{ALICE.id},{BOB.id}")

    assert response["channel"]["id"] == channel.id
    assert fake.members(channel.id) == [BOT_USER_ID, ALICE.id, BOB.id]
    joins = [m for m in fake.messages(channel.id, include_system=True) if m.subtype]
    assert [m.user for m in joins] == [BOT_USER_ID, ALICE.id, BOB.id]


@pytest.mark.parametrize(
    ("users", "error"),
    [
        (ALICE.id, "already_in_channel"),
        (BOT_USER_ID, "cant_invite_self"),
        ("U0NOBODY01", "user_not_found"),
        (f"{BOB.id},U0NOBODY01", "user_not_found"),
    ],
)
async def test_invite_errors_invite_nobody(
    client: AsyncWebClient, fake: FakeSlack, users: str, error: str
) -> None:
    channel = await new_channel(client, fake, "inc-2", ALICE.id)

    failure = await slack_error(client.conversations_invite(channel=channel.id, users=users))

    assert failure.response["error"] == error
    assert failure.response["errors"][0]["error"] == error
    assert fake.members(channel.id) == [BOT_USER_ID, ALICE.id]


async def test_invite_with_force_invites_the_valid_users(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-3")

    response = await client.conversations_invite(
        channel=channel.id, users=[BOB.id, "U0NOBODY01"], force=True
    )

    assert response["errors"] == [{"user": "U0NOBODY01", "ok": False, "error": "user_not_found"}]
    assert fake.members(channel.id) == [BOT_USER_ID, BOB.id]


async def test_invite_needs_the_bot_in_the_channel(client: AsyncWebClient, fake: FakeSlack) -> None:
    general = fake.channel_by_name("general")
    assert await error_code(client.conversations_invite(channel=general.id, users=CAROL.id)) == (
        "not_in_channel"
    )
    assert await error_code(client.conversations_invite(channel="C0NOTHERE1", users=CAROL.id)) == (
        "channel_not_found"
    )


async def test_private_channel_of_others_is_channel_not_found(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    secret = fake.add_channel("hr-private", members=(ALICE.id,), is_private=True)

    assert await error_code(client.conversations_info(channel=secret.id)) == "channel_not_found"
    assert await error_code(client.conversations_join(channel=secret.id)) == "channel_not_found"


async def test_set_topic_and_purpose(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-4")

    topic = await client.conversations_setTopic(channel=channel.id, topic="P1 | db down")
    await client.conversations_setPurpose(channel=channel.id, purpose="Incident 4")

    assert topic["channel"]["topic"]["value"] == "P1 | db down"
    assert channel.topic["value"] == "P1 | db down"
    assert channel.topic["creator"] == BOT_USER_ID
    assert channel.purpose["value"] == "Incident 4"
    subtypes = [m.subtype for m in fake.messages(channel.id, include_system=True)]
    assert subtypes[-2:] == ["channel_topic", "channel_purpose"]


async def test_set_topic_over_250_characters_is_too_long(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-5")

    await client.conversations_setTopic(channel=channel.id, topic="")
    assert channel.topic["value"] == ""
    await client.conversations_setTopic(channel=channel.id, topic="x" * 250)
    assert await error_code(client.conversations_setTopic(channel=channel.id, topic="x" * 251)) == (
        "too_long"
    )
    assert channel.topic["value"] == "x" * 250


async def test_archive_then_writes_are_refused(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-6")

    await client.conversations_archive(channel=channel.id)

    assert channel.is_archived
    assert await error_code(client.conversations_archive(channel=channel.id)) == "already_archived"
    assert await error_code(client.chat_postMessage(channel=channel.id, text="hi")) == "is_archived"
    assert await error_code(client.conversations_setTopic(channel=channel.id, topic="t")) == (
        "is_archived"
    )
    general = fake.channel_by_name("general")
    assert await error_code(client.conversations_archive(channel=general.id)) == (
        "cant_archive_general"
    )


async def test_join_public_channel(client: AsyncWebClient, fake: FakeSlack) -> None:
    general = fake.channel_by_name("general")

    response = await client.conversations_join(channel=general.id)
    again = await client.conversations_join(channel=general.id)

    assert response["channel"]["is_member"] is True
    assert again["warning"] == "already_in_channel"
    assert BOT_USER_ID in fake.members(general.id)


async def test_members_paginates_with_cursors(client: AsyncWebClient, fake: FakeSlack) -> None:
    general = fake.channel_by_name("general")

    first = await client.conversations_members(channel=general.id, limit=3)
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_members(channel=general.id, limit=3, cursor=cursor)

    assert first["members"] + second["members"] == fake.members(general.id)
    assert second["response_metadata"]["next_cursor"] == ""
    assert await error_code(
        client.conversations_members(channel=general.id, cursor="not-a-cursor")
    ) == ("invalid_cursor")


async def test_history_and_replies_show_threads_as_slack_does(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    channel = await new_channel(client, fake, "inc-7")
    parent = await client.chat_postMessage(channel=channel.id, text="status: investigating")
    await client.chat_postMessage(channel=channel.id, text="db cpu 98%", thread_ts=parent["ts"])
    await client.chat_postMessage(
        channel=channel.id, text="failover started", thread_ts=parent["ts"], reply_broadcast=True
    )

    history = await client.conversations_history(channel=channel.id)
    replies = await client.conversations_replies(channel=channel.id, ts=parent["ts"])

    texts = [m["text"] for m in history["messages"] if "subtype" not in m]
    assert texts == ["status: investigating"]
    assert history["messages"][0]["subtype"] == "thread_broadcast"
    top = next(m for m in history["messages"] if m["ts"] == parent["ts"])
    assert top["reply_count"] == 2
    assert [m["text"] for m in replies["messages"]] == [
        "status: investigating",
        "db cpu 98%",
        "failover started",
    ]
    assert await error_code(client.conversations_replies(channel=channel.id, ts="1.000000")) == (
        "thread_not_found"
    )


async def test_history_needs_membership(client: AsyncWebClient, fake: FakeSlack) -> None:
    general = fake.channel_by_name("general")
    assert await error_code(client.conversations_history(channel=general.id)) == "not_in_channel"
