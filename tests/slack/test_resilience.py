"""Slack misbehaving: slow, rate-limited, failing at random, losing answers."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, func, select
from starlette.testclient import TestClient

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.store.models import OutboxRow
from handlers.app import create_app
from handlers.slack.chat import SlackChat
from handlers.slack.limits import RateGate
from tests.fakes.slack_api import FakeSlack, running_fake_slack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOT_TOKEN

from ..conftest import T0
from .test_e2e import SECRET, Harness, incident_channel


def slack_env(monkeypatch: pytest.MonkeyPatch, database_url: str, fake: FakeSlack) -> None:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
    monkeypatch.setenv("WARROOM_SLACK__BROADCAST_CHANNEL", fake.channel_by_name("incidents").id)


@pytest.fixture
def slow(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        slack_env(monkeypatch, database_url, fake)
        with TestClient(create_app(load_settings())) as client:
            harness = Harness(client, fake)
            harness.wait("auth.test at start-up", lambda: fake.calls_to("auth.test"))
            fake.latency = 2.0
            yield harness
            fake.latency = 0.0


def test_every_command_and_button_is_acknowledged_within_a_second_of_a_slow_slack(
    slow: Harness,
) -> None:
    general = slow.fake.channel_by_name("general").id
    timings = {}
    for text in (
        "declare Checkout latency sev:P2",
        "list",
        "ack INC-1",
        "sev INC-1 P1",
        "note INC-1 looking at the pool",
        "update INC-1",
        "timeline INC-1",
        "bogus",
    ):
        started = time.monotonic()
        answer = slow.command(text, channel=general)
        timings[text] = time.monotonic() - started
        assert answer.status_code == 200, text
    click = {
        "type": "block_actions",
        "user": {"id": ALICE.id},
        "team": {"id": "T0FAKE0001"},
        "trigger_id": slow.fake.issue_trigger_id(),
        "response_url": slow.fake.response_url("b"),
        "actions": [
            {
                "action_id": "incident.resolve",
                "value": "INC-0001",
                "type": "button",
                "block_id": "incident.card_actions",
            }
        ],
    }
    started = time.monotonic()
    assert slow.interaction(click).status_code == 200
    timings["button"] = time.monotonic() - started
    assert max(timings.values()) < 1.0, timings
    # The work happened after the ack, at Slack's pace.
    slow.wait(
        "the declare's answer",
        lambda: any("INC-0001 declared" in r.get("text", "") for r in slow.fake.responses),
        seconds=30,
    )


@pytest.fixture
async def chaotic(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple]:
    async with running_fake_slack(failure_rate=0.3, seed=7, rate_limit_scale=60.0) as fake:
        slack_env(monkeypatch, database_url, fake)
        clock = FixedClock(T0)
        core = Core.build(load_settings(), clock=clock)
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        chat = SlackChat(client, RateGate(scale=60.0))
        try:
            yield core, chat, fake, clock
        finally:
            await core.close()


async def test_429_and_500_at_random_every_message_exactly_once_in_order(chaotic) -> None:
    core, chat, fake, clock = chaotic
    for n in range(3):
        await core.incidents.declare(title=f"Chaos {n}", severity="P2", actor=ALICE.id)
    for round_ in range(4):
        for n in range(1, 4):
            await core.updates.post(f"INC-{n}", actor=ALICE.id, progress=f"step {round_}")
    fake.fail_next("chat.postMessage", 3, status=500, after_effect=True)  # answers lost
    worker = core.delivery(chat)
    for _ in range(400):
        await worker.run_once()
        clock.advance(timedelta(seconds=30))
        async with core.db.transaction(read_only=True) as session:
            pending = (
                await session.exec(select(func.count()).where(col(OutboxRow.status) == "pending"))
            ).one()
        if pending == 0:
            break
    async with core.db.transaction(read_only=True) as session:
        statuses = Counter((await session.exec(select(col(OutboxRow.status)))).all())
    assert statuses == Counter({"done": statuses["done"]}), statuses
    assert fake.ratelimited_count > 0  # the chaos really happened
    for n in range(3):
        channel = incident_channel(fake, f"-000{n + 1}-chaos-{n}")
        texts = [m.text for m in fake.messages(channel.id)]
        updates = [t for t in texts if t.startswith("INCIDENT UPDATE")]
        assert [u.split("Progress: ")[1].split("\n")[0] for u in updates] == [
            f"step {r}" for r in range(4)
        ]
        assert len(texts) == len(set(texts)), "a message was posted twice"
        assert sum(1 for t in texts if t.startswith("INCIDENT: ")) == 1
        assert len(fake.pins(channel.id)) == 1
    assert fake.calls_by_method["conversations.create"] >= 3
    assert len([c for c in fake.workspace.channels.values() if c.name.startswith("inc-")]) == 3
