"""The pinned card follows a follow-up's life in Slack: the fake Slack, the Jira stand-in, the
real store and the server's worker.

A follow-up added puts it on the card; the ticket filed puts its link there; the ticket done
(read back from Jira) marks it done. Each time the one pinned card is edited in place
(``chat.update``), never posted again.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import tickets
from bot.delivery.worker import DeliveryWorker
from bot.store.models import OutboxRow
from handlers.compose import outside_kinds
from handlers.slack.chat import SlackChat
from handlers.slack.limits import RateGate
from tests.fakes.jira import FakeJira
from tests.fakes.slack_api import FakeSlack, running_fake_slack
from tests.fakes.slack_state import ALICE, BOT_TOKEN, Message

from ..conftest import T0

EMAIL, TOKEN = "bot@acme.example", "jira-secret"


@dataclass
class Stage:
    core: Core
    worker: DeliveryWorker
    fake: FakeSlack
    jira: FakeJira
    clock: FixedClock

    async def settle(self) -> None:
        """Deliver until only the scheduled ticket polls wait, moving time past backoffs."""
        for _ in range(60):
            await self.worker.drain()
            async with self.core.db.transaction(read_only=True) as session:
                pending = (
                    await session.exec(
                        select(OutboxRow).where(
                            col(OutboxRow.status) == "pending", col(OutboxRow.kind) != tickets.POLL
                        )
                    )
                ).all()
            if not pending:
                return
            self.clock.advance(timedelta(seconds=30))
        raise AssertionError(f"rows still pending: {[r.kind for r in pending]}")


@pytest.fixture
async def stage(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Stage]:
    with FakeJira(EMAIL, TOKEN) as jira:
        async with running_fake_slack(rate_limit_scale=60.0) as fake:
            for var in list(os.environ):
                if var.startswith(("WARROOM_", "SLACK_")):
                    monkeypatch.delenv(var)
            monkeypatch.setenv("DATABASE_URL", database_url)
            monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
            monkeypatch.setenv("SLACK_SIGNING_SECRET", "s" * 32)
            monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
            monkeypatch.setenv("T_JIRA_EMAIL", EMAIL)
            monkeypatch.setenv("T_JIRA_TOKEN", TOKEN)
            config = tmp_path / "warroom.yaml"
            config.write_text(
                "tickets:\n  targets:\n    ops: "
                f"{{kind: jira, url: '{jira.url}', email_env: T_JIRA_EMAIL, "
                "token_env: T_JIRA_TOKEN, project: OPS}\n"
            )
            clock = FixedClock(T0)
            core = Core.build(load_settings(config), clock=clock)
            client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
            chat = SlackChat(client, RateGate(scale=60.0))
            try:
                yield Stage(core, core.delivery(chat, kinds=outside_kinds(core)), fake, jira, clock)
            finally:
                await core.close()
            fake.assert_clean()


def cards(fake: FakeSlack, channel: str) -> list[Message]:
    """The card messages in the channel (those opening with a header)."""
    return [m for m in fake.messages(channel) if m.blocks and m.blocks[0]["type"] == "header"]


def follow_up_text(card: Message | list[Any] | None) -> str:
    """The text of the card's Follow-ups section (of a message, or of earlier blocks)."""
    found = card.blocks if isinstance(card, Message) else card
    for block in found or []:
        text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
        if text.startswith("*Follow-ups:*"):
            return str(text)
    return ""


async def test_the_card_is_edited_as_a_follow_up_is_added_filed_and_done(stage: Stage) -> None:
    core, fake = stage.core, stage.fake
    made = await core.incidents.declare(title="Queue stuck", severity="P1", actor=ALICE.id)
    await stage.settle()
    incident = await core.incidents.get(made.key)
    channel, card_ts = incident.channel_id, incident.card_ts
    assert channel is not None
    assert card_ts is not None
    assert follow_up_text(cards(fake, channel)[0]) == ""
    updates = fake.calls_by_method["chat.update"]

    await core.incidents.add_follow_up(
        made.key, "<!channel> add a *queue* depth alert", actor=ALICE.id, owner=ALICE.id
    )
    await stage.settle()
    assert list(stage.jira.issues) == ["OPS-1"]
    (card,) = cards(fake, channel)
    assert card.ts == card_ts
    assert [m.ts for m in fake.pins(channel)] == [card_ts]
    url = f"{stage.jira.url}/browse/OPS-1"
    assert follow_up_text(card).split("\n") == [
        "*Follow-ups:* 1 open · 0 done",
        f"⬜ #1 &lt;!channel&gt; add a ∗queue∗ depth alert · <@{ALICE.id}> · 🎫 <{url}|OPS-1>",
    ]
    assert fake.calls_by_method["chat.update"] > updates
    updates = fake.calls_by_method["chat.update"]

    stage.jira.transition("OPS-1", "Done")
    stage.clock.advance(timedelta(minutes=6))  # the next readback is due
    await stage.settle()
    (item,) = await core.incidents.follow_ups(made.key)
    assert item.status == "done"
    (card,) = cards(fake, channel)
    assert card.ts == card_ts
    assert [m.ts for m in fake.pins(channel)] == [card_ts]
    assert fake.calls_by_method["chat.update"] > updates
    lines = follow_up_text(card).split("\n")
    assert lines[0] == "*Follow-ups:* 0 open · 1 done"
    assert lines[1].startswith("✅ #1 ")
    assert lines[1].endswith(f"🎫 <{url}|OPS-1>")
    # The card's earlier versions: without follow-ups, then the follow-up open.
    heads = [follow_up_text(edit.get("blocks")).split("\n")[0] for edit in card.edits]
    assert heads[0] == ""
    assert heads[-1] == "*Follow-ups:* 1 open · 0 done"
