"""users.*, usergroups.*, auth.test, views.* (trigger ids) and the file upload flow."""

from __future__ import annotations

from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack, ManualClock
from tests.fakes.slack_state import ALICE, BOB, BOT_USER_ID, TEAM_ID
from tests.fakes_tests.support import error_code, new_channel, slack_error


def modal(title: str = "Declare incident", **extra: Any) -> dict[str, Any]:
    return {"type": "modal", "title": {"type": "plain_text", "text": title}, "blocks": [], **extra}


async def test_auth_test_names_the_bot(client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert (response["user_id"], response["team_id"]) == (BOT_USER_ID, TEAM_ID)


async def test_users_info_and_lookup_by_email(client: AsyncWebClient) -> None:
    info = await client.users_info(user=ALICE.id)
    found = await client.users_lookupByEmail(email="Bob@Example.com")

    assert info["user"]["profile"]["email"] == ALICE.email
    assert found["user"]["id"] == BOB.id
    assert await error_code(client.users_info(user="U0NOBODY01")) == "user_not_found"
    assert await error_code(client.users_lookupByEmail(email="x@example.com")) == (
        "users_not_found"
    )


async def test_usergroup_members(client: AsyncWebClient) -> None:
    response = await client.usergroups_users_list(usergroup="S0ONCALL01")
    assert response["users"] == [ALICE.id, BOB.id]
    assert await error_code(client.usergroups_users_list(usergroup="S0NOPE0001")) == (
        "no_such_subteam"
    )


async def test_views_open_with_a_fresh_trigger(client: AsyncWebClient, fake: FakeSlack) -> None:
    trigger = fake.issue_trigger_id(ALICE.id)

    response = await client.views_open(trigger_id=trigger, view=modal())

    view = response["view"]
    assert view["title"]["text"] == "Declare incident"
    assert [v.id for v in fake.views] == [view["id"]]
    assert fake.views[0].user == ALICE.id
    assert await error_code(client.views_open(trigger_id=trigger, view=modal())) == (
        "exchanged_trigger_id"
    )


async def test_trigger_ids_expire_after_three_seconds(
    client: AsyncWebClient, fake: FakeSlack, slack_clock: ManualClock
) -> None:
    trigger = fake.issue_trigger_id()
    slack_clock.advance(3.01)

    assert await error_code(client.views_open(trigger_id=trigger, view=modal())) == (
        "expired_trigger_id"
    )
    assert await error_code(client.views_open(trigger_id="123.456.abc", view=modal())) == (
        "invalid_trigger_id"
    )
    assert fake.views == []


async def test_invalid_view_is_invalid_arguments(client: AsyncWebClient, fake: FakeSlack) -> None:
    failure = await slack_error(
        client.views_open(trigger_id=fake.issue_trigger_id(), view=modal("t" * 25))
    )

    assert failure.response["error"] == "invalid_arguments"
    assert failure.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]


async def test_views_update_and_push(client: AsyncWebClient, fake: FakeSlack) -> None:
    opened = (await client.views_open(trigger_id=fake.issue_trigger_id(), view=modal()))["view"]

    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal("Step 2")
    )
    stale = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("Step 3"))
    pushed = await client.views_push(
        trigger_id=fake.issue_trigger_id(view_id=opened["id"]), view=modal("Confirm")
    )

    assert updated["view"]["title"]["text"] == "Step 2"
    assert await error_code(stale) == "hash_conflict"
    assert pushed["view"]["previous_view_id"] == opened["id"]
    assert pushed["view"]["root_view_id"] == opened["id"]
    assert await error_code(client.views_update(view_id="V0NOTHERE1", view=modal())) == (
        "not_found"
    )


async def test_upload_a_file_with_the_new_flow(client: AsyncWebClient, fake: FakeSlack) -> None:
    channel = await new_channel(client, fake, "inc-files")

    response = await client.files_upload_v2(
        channel=channel.id,
        content="timeline\n10:00 alert\n",
        filename="timeline.txt",
        title="Timeline",
        initial_comment="post-mortem draft",
    )

    [file] = fake.workspace.files.values()
    assert response["file"]["id"] == file.id
    assert file.content == b"timeline\n10:00 alert\n"
    assert file.title == "Timeline"
    [message] = fake.messages(channel.id)
    assert message.text == "post-mortem draft"
    assert message.files is not None
    assert message.files[0]["id"] == file.id
    calls = [c.method for c in fake.calls]
    assert calls[-2:] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


async def test_upload_url_takes_multipart_too(client: AsyncWebClient, fake: FakeSlack) -> None:
    ticket = await client.files_getUploadURLExternal(filename="x.log", length=3)

    async with httpx.AsyncClient() as http:
        uploaded = await http.post(ticket["upload_url"], files={"file": ("x.log", b"abc")})
    completed = await client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}])

    assert uploaded.text == "OK - 3"
    assert completed["files"][0]["title"] == "x.log"
    assert fake.workspace.files[ticket["file_id"]].content == b"abc"


async def test_complete_before_upload_is_file_not_found(client: AsyncWebClient) -> None:
    ticket = await client.files_getUploadURLExternal(filename="x.log", length=3)
    assert await error_code(
        client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}])
    ) == ("file_not_found")


def home(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "home", "blocks": list(blocks)}


def text(body: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": body}}


async def test_views_publish_sets_the_users_home_tab(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    first = (await client.views_publish(user_id=ALICE.id, view=home(text("one"))))["view"]
    again = (await client.views_publish(user_id=ALICE.id, view=home(text("two"))))["view"]

    shown = fake.home(ALICE.id)
    assert shown is not None
    assert (first["type"], again["id"], shown.publishes) == ("home", first["id"], 2)
    assert shown.body["blocks"] == [text("two")]
    assert again["hash"] != first["hash"]
    assert fake.home(BOB.id) is None
    assert fake.views == []  # a Home tab is not a modal


async def test_views_publish_is_strict_about_home_views(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    modal_there = await slack_error(client.views_publish(user_id=ALICE.id, view=modal()))
    too_many = await slack_error(
        client.views_publish(user_id=ALICE.id, view=home(*[text("x")] * 101))
    )
    nobody = await slack_error(client.views_publish(user_id="U0NOBODY01", view=home()))
    home_as_modal = await slack_error(
        client.views_open(trigger_id=fake.issue_trigger_id(), view=home(text("x")))
    )

    assert modal_there.response["response_metadata"]["messages"] == [
        "[ERROR] unsupported type: modal [json-pointer:/view/type]"
    ]
    assert too_many.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
    ]
    assert nobody.response["response_metadata"]["messages"] == ["invalid `user_id`"]
    assert home_as_modal.response["error"] == "invalid_arguments"
    assert fake.home(ALICE.id) is None


async def test_users_conversations_lists_a_persons_channels(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    theirs = await new_channel(client, fake, "inc-theirs", BOB.id)
    await new_channel(client, fake, "inc-other")
    hidden = fake.add_channel("bob-private", members=(BOB.id,), is_private=True)

    listed = await client.users_conversations(
        user=BOB.id, types="public_channel,private_channel", limit=1
    )
    rest = await client.users_conversations(
        user=BOB.id,
        types="public_channel,private_channel",
        cursor=listed["response_metadata"]["next_cursor"],
    )

    names = [c["name"] for c in [*listed["channels"], *rest["channels"]]]
    assert theirs.name in names
    assert "inc-other" not in names
    assert hidden.name not in names  # private, and the bot is not in it
    assert await error_code(client.users_conversations(user=BOB.id, types="dm")) == (
        "invalid_types"
    )
