"""The fake served on its own port: in the test's event loop, and in a thread for sync clients."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import (
    BOT_TOKEN,
    create_fake_slack,
    running_fake_slack,
    running_fake_slack_in_thread,
)


async def test_running_in_the_same_event_loop() -> None:
    async with running_fake_slack(rate_limits=False) as fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
        assert fake.base_url.endswith("/api/")
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)

        response = await client.conversations_create(name="inc-loop")

        assert fake.channel(response["channel"]["id"]).name == "inc-loop"
        fake.assert_clean()
    assert not fake.is_served


def test_running_in_a_thread_for_the_sync_client() -> None:
    fake = create_fake_slack()
    with running_fake_slack_in_thread(fake) as served:
        client = WebClient(token=BOT_TOKEN, base_url=served.base_url)

        created = client.conversations_create(name="inc-sync")
        client.chat_postMessage(channel=created["channel"]["id"], text="from a sync client")

    assert [m.text for m in fake.messages("inc-sync")] == ["from a sync client"]
    assert fake.calls_by_method == {"conversations.create": 1, "chat.postMessage": 1}
    fake.assert_clean()
