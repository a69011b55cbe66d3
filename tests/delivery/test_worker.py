"""The outbox and its delivery worker: order per lane, retries, exactly once, local transcript."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery.notify import Notifier
from bot.delivery.outbox import enqueue
from bot.delivery.transcript import transcript_of
from bot.delivery.worker import DeliveryWorker
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.ports.chat import ChannelRef, Message, RateLimited, Rejected, Transient
from bot.store.db import Database
from bot.store.models import OutboxRow
from bot.templating import Templates


class ScriptedChat:
    """The chat port in memory, with failures scripted per call: enough to test the worker."""

    connected = True

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, str]] = []  # (channel, marker, text)
        self.calls: Counter[str] = Counter()
        self.script: dict[str, list[Exception | None]] = defaultdict(list)
        self.applied_despite_error: set[str] = set()
        self.channels: dict[str, str] = {}
        self.delay = 0.0

    def fail(self, op: str, *errors: Exception | None) -> None:
        self.script[op].extend(errors)

    async def _step(self, op: str) -> Exception | None:
        self.calls[op] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.script[op].pop(0) if self.script[op] else None

    async def open_channel(self, name: str, *, private: bool, marker: str) -> ChannelRef:
        error = await self._step("open_channel")
        if error:
            raise error
        self.channels[name] = f"C{len(self.channels) + 1:04d}"
        return ChannelRef(self.channels[name], name)

    async def invite(
        self,
        channel: str,
        *,
        users: Sequence[str] = (),
        usergroups: Sequence[str] = (),
        emails: Sequence[str] = (),
    ) -> list[str]:
        await self._step("invite")
        return list(users)

    async def set_topic(self, channel: str, topic: str) -> None:
        await self._step("topic")

    async def post(
        self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
    ) -> str:
        error = await self._step("post")
        if error is not None:
            if (
                isinstance(error, Transient)
                and error.uncertain
                and marker not in self.applied_despite_error
            ):
                self.applied_despite_error.add(marker)
                self.posts.append((channel, marker, message.text))  # it went through anyway
            raise error
        self.posts.append((channel, marker, message.text))
        return f"{len(self.posts)}.000100"

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._step("update")

    async def pin(self, channel: str, ts: str) -> None:
        error = await self._step("pin")
        if error:
            raise error

    async def bookmark(self, channel: str, title: str, url: str) -> None:
        await self._step("bookmark")

    async def find_marked(
        self, channel: str, marker: str, *, thread_ts: str | None = None
    ) -> str | None:
        self.calls["find_marked"] += 1
        for n, (_, posted, _) in enumerate(self.posts):
            if posted == marker:
                return f"{n + 1}.000100"
        return None

    async def permalink(self, channel: str, ts: str) -> str | None:
        return None


def worker(db: Database, chat: ScriptedChat, clock: FixedClock, **kw) -> DeliveryWorker:
    incidents = Incidents(db, clock=clock, scheme=P1_P4)
    return DeliveryWorker(db, chat, incidents, clock=clock, broadcast="C0BROADCAST", **kw)


async def seed(db: Database, clock: FixedClock, lanes: int, per_lane: int) -> None:
    """Incidents with channels, and ``per_lane`` messages queued for each."""
    incidents = Incidents(db, clock=clock, scheme=P1_P4)
    for lane in range(lanes):
        made = await incidents.declare(title=f"lane {lane}", actor="t")
        async with db.transaction() as session:
            locked = await incidents.lock(session, made.id or 0)
            locked.channel_id = f"C{lane:04d}"
            session.add(locked)
            for n in range(per_lane):
                await enqueue(
                    session,
                    lane=made.key,
                    kind="message",
                    payload={"text": f"{made.key} #{n}"},
                    now=clock.now(),
                    incident_id=made.id,
                )


def by_channel(posts: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for channel, _, text in posts:
        found[channel].append(text)
    return found


async def test_declare_opens_channel_then_card_then_messages_in_order(
    db: Database, clock: FixedClock
) -> None:
    incidents = Incidents(
        db,
        clock=clock,
        scheme=P1_P4,
        listeners=[Notifier(templates=Templates(), scheme=P1_P4, broadcast="C0BROADCAST")],
    )
    chat = ScriptedChat()
    await incidents.declare(
        title="Database connection exhaustion", severity="P1", actor="U1", commander="U0ALICE001"
    )
    delivery = DeliveryWorker(db, chat, incidents, clock=clock, broadcast="C0BROADCAST")
    await delivery.drain()
    clock.advance(timedelta(seconds=2))  # the announcement waited for the channel to open
    await delivery.drain()
    incident = await incidents.get("INC-1")
    assert incident.channel_name == "inc-20261126-0001-database-connection-exhaustion"
    assert incident.channel_id == "C0001"
    assert chat.calls["pin"] == 1
    # In the incident's channel, in order: the card, then the initial message.
    in_channel = [(n, text) for n, (c, _, text) in enumerate(chat.posts) if c == "C0001"]
    (card_n, card), (_, initial) = in_channel
    assert card == "INC-0001 [P1] investigating: Database connection exhaustion"
    assert incident.card_ts == f"{card_n + 1}.000100"  # the pinned card is the card posted
    assert initial.startswith("INCIDENT: Database connection exhaustion\nSeverity: P1")
    # In the broadcast channel (its own lane), once the channel existed to link to.
    (announce,) = [text for c, _, text in chat.posts if c == "C0BROADCAST"]
    assert "INC-0001 P1 declared" in announce
    assert "Join <#C0001>" in announce

    await incidents.set_status("INC-1", "mitigating", actor="U1")
    await incidents.set_severity("INC-1", "P2", actor="U1")
    await delivery.drain()
    assert chat.calls["update"] == 1  # two changes, one card edit: pending updates coalesce
    assert chat.calls["topic"] == 2


async def test_order_per_lane_survives_429_and_500(db: Database, clock: FixedClock) -> None:
    await seed(db, clock, lanes=3, per_lane=5)
    chat = ScriptedChat()
    chat.fail(
        "post",
        RateLimited(2),
        None,
        Transient("HTTP 500", uncertain=False),
        None,
        Transient("HTTP 503", uncertain=True),
    )
    delivery = worker(db, chat, clock)
    for _ in range(30):
        await delivery.run_once()
        clock.advance(timedelta(seconds=5))
    lanes = by_channel(chat.posts)
    for lane, texts in lanes.items():
        key = texts[0].split(" ")[0]
        assert texts == [f"{key} #{n}" for n in range(5)], lane
    assert sum(len(t) for t in lanes.values()) == 15  # exactly once, the uncertain one too
    assert chat.calls["find_marked"] >= 1
    async with db.transaction(read_only=True) as session:
        rows = (await session.exec(select(OutboxRow))).all()
    assert {r.status for r in rows} == {"done"}
    assert any(r.result.get("recovered") for r in rows)


async def test_permanent_refusal_is_marked_failed_and_does_not_block_the_lane(
    db: Database, clock: FixedClock
) -> None:
    await seed(db, clock, lanes=1, per_lane=3)
    chat = ScriptedChat()
    chat.fail("post", Rejected("invalid_blocks", "chat.postMessage"))
    delivery = worker(db, chat, clock)
    await delivery.drain()
    assert [text for _, _, text in chat.posts] == ["INC-0001 #1", "INC-0001 #2"]
    async with db.transaction(read_only=True) as session:
        failed = (
            await session.exec(select(OutboxRow).where(col(OutboxRow.status) == "failed"))
        ).all()
    assert [(r.payload["text"], r.last_error) for r in failed] == [
        ("INC-0001 #0", "chat.postMessage: invalid_blocks")
    ]


async def test_transient_failures_give_up_after_max_attempts(
    db: Database, clock: FixedClock
) -> None:
    await seed(db, clock, lanes=1, per_lane=1)
    chat = ScriptedChat()
    chat.fail("post", *[Transient("HTTP 500", uncertain=False)] * 10)
    delivery = worker(db, chat, clock, max_attempts=3)
    for _ in range(10):
        await delivery.run_once()
        clock.advance(timedelta(minutes=2))
    async with db.transaction(read_only=True) as session:
        (row,) = (await session.exec(select(OutboxRow))).all()
    assert (row.status, row.attempts) == ("failed", 3)
    assert chat.calls["post"] == 3


async def test_a_crashed_worker_lease_expires_and_the_row_is_sent_once(
    db: Database, clock: FixedClock
) -> None:
    from bot.delivery.outbox import claim

    await seed(db, clock, lanes=1, per_lane=2)
    (claimed,) = await claim(db, worker="dead", now=clock.now(), lease=timedelta(seconds=60))
    chat = ScriptedChat()
    # The dead worker's post reached Slack; it died before recording that.
    chat.posts.append(("C0000", f"wr-{claimed.id}", "INC-0001 #0"))
    alive = worker(db, chat, clock)
    assert await alive.run_once() == 0  # leased to the dead worker
    clock.advance(timedelta(seconds=61))
    await alive.drain()
    assert [text for _, _, text in chat.posts] == ["INC-0001 #0", "INC-0001 #1"]
    assert chat.calls["find_marked"] == 1  # only the row the dead worker held is looked up
    async with db.transaction(read_only=True) as session:
        first = await session.get(OutboxRow, claimed.id)
    assert first is not None
    assert first.result.get("recovered") is True


async def test_a_slow_row_holds_up_only_its_own_lane(db: Database, clock: FixedClock) -> None:
    await seed(db, clock, lanes=2, per_lane=3)
    released = asyncio.Event()

    class SlowFirstLane(ScriptedChat):
        async def post(
            self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
        ) -> str:
            if channel == "C0000":
                await released.wait()  # e.g. a diagnostic waiting on its database
            return await super().post(channel, message, marker=marker, thread_ts=thread_ts)

    chat = SlowFirstLane()
    delivery = worker(db, chat, clock)
    stop = asyncio.Event()
    running = asyncio.create_task(delivery.run_forever(stop, idle=0.05))
    for _ in range(100):
        if len(chat.posts) == 3:
            break
        await asyncio.sleep(0.02)
    assert by_channel(chat.posts) == {"C0001": ["INC-0002 #0", "INC-0002 #1", "INC-0002 #2"]}
    released.set()
    for _ in range(100):
        if len(chat.posts) == 6:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await running
    assert by_channel(chat.posts)["C0000"] == ["INC-0001 #0", "INC-0001 #1", "INC-0001 #2"]


async def test_two_workers_never_send_the_same_row(pg_migrated: str, clock: FixedClock) -> None:
    from tests.conftest import _empty_pg

    _empty_pg(pg_migrated)
    first_db, second_db = Database(pg_migrated), Database(pg_migrated)
    try:
        await seed(first_db, clock, lanes=10, per_lane=20)
        chat = ScriptedChat()
        chat.delay = 0.002
        workers = [
            worker(first_db, chat, clock, worker_id="a"),
            worker(second_db, chat, clock, worker_id="b"),
        ]
        await asyncio.gather(*(w.drain() for w in workers))
        markers = Counter(marker for _, marker, _ in chat.posts)
        assert len(markers) == 200
        assert set(markers.values()) == {1}
        for texts in by_channel(chat.posts).values():
            key = texts[0].split(" ")[0]
            assert texts == [f"{key} #{n}" for n in range(20)]
    finally:
        await first_db.dispose()
        await second_db.dispose()
        _empty_pg(pg_migrated)


async def test_local_mode_keeps_a_transcript(
    database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    core = Core.build(load_settings(), clock=clock)
    try:
        made = await core.incidents.declare(title="Cache failure", severity="P2", actor="U1")
        await core.delivery().drain()
        entries = await transcript_of(core.db, made.id or 0)
    finally:
        await core.close()
    assert [e.action for e in entries] == ["channel", "topic", "card", "pin", "message"]
    assert entries[0].text == "#inc-20261126-0001-cache-failure opened"
    assert entries[4].text.startswith("INCIDENT: Cache failure")
    assert {e.channel for e in entries} == {"#inc-20261126-0001-cache-failure"}


async def test_resolved_alerts_are_summarised_in_the_card_thread_once_a_minute(
    db: Database, clock: FixedClock
) -> None:
    from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
    from bot.intake.classify import DEFAULT_RULES, Classifier
    from bot.intake.fold import Endpoint, Intake

    incidents = Incidents(
        db, clock=clock, scheme=P1_P4, listeners=[Notifier(templates=Templates(), scheme=P1_P4)]
    )
    intake = Intake(db, incidents, Classifier(P1_P4, DEFAULT_RULES), clock=clock)
    endpoint = Endpoint(name="am", source="alertmanager")

    def alert(name: str, status: str) -> NormalizedAlert:
        return NormalizedAlert(
            source="alertmanager",
            fingerprint=name,
            status=AlertStatus(status),
            labels={"alertname": name},
            annotations={},
            summary=name,
            group_key="g",
        )

    async def send(key: str, *alerts: NormalizedAlert) -> None:
        await intake.receive(endpoint, Delivery("alertmanager", alerts), delivery_key=key)

    await send("d1", alert("A", "firing"), alert("B", "firing"), alert("C", "firing"))
    chat = ScriptedChat()
    delivery = worker(db, chat, clock)
    await delivery.drain()
    card_ts = (await incidents.get("INC-1")).card_ts
    clock.advance(timedelta(seconds=10))
    await send("d2", alert("A", "resolved"), alert("B", "resolved"))
    clock.advance(timedelta(seconds=10))
    await send("d3", alert("C", "resolved"))
    await delivery.drain()
    assert not [t for _, _, t in chat.posts if "resolved:" in t]  # held until the minute ends
    clock.advance(timedelta(minutes=1))
    await delivery.drain()
    summaries = [t for _, _, t in chat.posts if "alert(s) resolved" in t]
    assert summaries == ["✅ 3 alert(s) resolved: A, B, C"]
    assert card_ts is not None


async def test_a_row_waiting_longer_than_its_lease_is_not_taken_again(db: Database) -> None:
    from bot.clock import SystemClock

    clock = SystemClock()
    await seed(db, clock, lanes=1, per_lane=1)
    released = asyncio.Event()

    class SlowSlack(ScriptedChat):
        async def post(
            self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
        ) -> str:
            await released.wait()  # e.g. waiting minutes for Slack's rate limit
            return await super().post(channel, message, marker=marker, thread_ts=thread_ts)

    chat = SlowSlack()
    lease = timedelta(seconds=0.8)
    slow = worker(db, chat, clock, worker_id="slow", lease=lease)
    other = worker(db, chat, clock, worker_id="other", lease=lease)
    stop = asyncio.Event()
    running = asyncio.create_task(slow.run_forever(stop, idle=0.05))
    taken = 0
    for _ in range(50):  # 2.5 s: three leases long
        await asyncio.sleep(0.05)
        taken += len(await claim_for(other, lease))
    released.set()
    for _ in range(100):
        if chat.posts:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await running
    assert taken == 0
    assert [text for _, _, text in chat.posts] == ["INC-0001 #0"]


async def claim_for(other: DeliveryWorker, lease: timedelta) -> list[OutboxRow]:
    from bot.delivery.outbox import claim

    return await claim(other.db, worker=other.worker_id, now=other.clock.now(), lease=lease)


async def test_a_card_whose_pin_is_rate_limited_is_not_posted_again(
    db: Database, clock: FixedClock
) -> None:
    incidents = Incidents(
        db, clock=clock, scheme=P1_P4, listeners=[Notifier(templates=Templates(), scheme=P1_P4)]
    )
    await incidents.declare(title="Cache failure", severity="P2", actor="U1")
    chat = ScriptedChat()
    chat.fail("pin", RateLimited(1))  # the card went out; pinning it answered 429
    delivery = DeliveryWorker(db, chat, incidents, clock=clock)
    for _ in range(5):
        await delivery.drain()
        clock.advance(timedelta(seconds=2))
    cards = [text for _, _, text in chat.posts if text.startswith("INC-0001 [P2]")]
    assert len(cards) == 1
    assert chat.calls["pin"] == 2


async def test_stopping_does_not_wait_for_a_row_stuck_on_slack(
    db: Database, clock: FixedClock
) -> None:
    await seed(db, clock, lanes=1, per_lane=1)
    never = asyncio.Event()

    class Stuck(ScriptedChat):
        async def post(
            self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
        ) -> str:
            await never.wait()  # e.g. waiting out a long Retry-After
            return await super().post(channel, message, marker=marker, thread_ts=thread_ts)

    stuck = worker(db, Stuck(), clock, stop_grace=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(stuck.run_forever(stop, idle=0.05))
    for _ in range(100):
        if stuck.chat.calls or await pending_claimed(db):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(running, timeout=5)  # returns after the grace, not never
    # The row was not lost: once its lease runs out, the next worker delivers it.
    clock.advance(timedelta(seconds=61))
    chat = ScriptedChat()
    await worker(db, chat, clock).drain()
    assert [text for _, _, text in chat.posts] == ["INC-0001 #0"]


async def pending_claimed(db: Database) -> bool:
    async with db.transaction(read_only=True) as session:
        rows = (await session.exec(select(OutboxRow))).all()
    return any(row.claimed_by for row in rows if row.kind == "message")
