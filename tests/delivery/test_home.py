"""Home pages through the outbox: role holders' homes follow their incidents, coalesced per
person, paced, once across workers, and not lost when a worker dies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import col, select

from bot.clock import FixedClock
from bot.delivery.home import HOME, HomeListener, show_home
from bot.delivery.outbox import claim
from bot.delivery.worker import DeliveryWorker
from bot.incidents.home import HomeView
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.store.db import Database
from bot.store.models import OutboxRow
from tests.delivery.test_worker import ScriptedChat

EVERY = timedelta(seconds=10)
ALICE, BOB = "U0ALICE001", "U0BOB00001"


class HomesChat(ScriptedChat):
    """The chat port with home pages: what each publish showed, and who is in which channel."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[HomeView] = []
        self.members: dict[str, set[str]] = {}

    async def member_channels(self, user: str, channels: Sequence[str]) -> set[str]:
        return self.members.get(user, set()) & set(channels)

    async def publish_home(self, user: str, home: HomeView) -> bool:
        self.published.append(home)
        return user.startswith("U")

    def homes_of(self, user: str) -> list[HomeView]:
        return [home for home in self.published if home.user == user]


def setup(db: Database, clock: FixedClock) -> tuple[Incidents, HomesChat, DeliveryWorker]:
    incidents = Incidents(db, clock=clock, scheme=P1_P4, listeners=[HomeListener(clock, EVERY)])
    chat = HomesChat()
    worker = DeliveryWorker(db, chat, incidents, clock=clock, home_every=EVERY)
    return incidents, chat, worker


async def test_two_role_changes_together_show_the_holders_home_once(
    db: Database, clock: FixedClock
) -> None:
    incidents, chat, worker = setup(db, clock)
    first = await incidents.declare(
        title="Checkout down", actor=ALICE, severity="P2", commander=ALICE
    )
    second = await incidents.declare(
        title="DB pool exhausted", actor=ALICE, severity="P1", commander=ALICE
    )

    await incidents.assign(first.key, "scribe", BOB, actor=ALICE)
    await incidents.assign(second.key, "communications", BOB, actor=ALICE)
    await worker.drain()

    (home,) = chat.homes_of(BOB)
    assert [(i.key, i.roles) for i in home.mine] == [
        (second.key, ("communications",)),  # the P1 first
        (first.key, ("scribe",)),
    ]
    assert len(chat.homes_of(ALICE)) == 1  # her two declarations, one publish too


async def test_a_change_soon_after_waits_for_the_interval(db: Database, clock: FixedClock) -> None:
    incidents, chat, worker = setup(db, clock)
    made = await incidents.declare(title="Checkout down", actor=ALICE, commander=BOB)
    await worker.drain()
    assert len(chat.homes_of(BOB)) == 1

    await incidents.set_severity(made.key, "P1", actor=ALICE)
    await incidents.note(made.key, "nothing on the page changes", actor=ALICE)
    await worker.drain()
    clock.advance(EVERY - timedelta(seconds=1))
    await worker.drain()
    assert len(chat.homes_of(BOB)) == 1  # not yet: at most one per person every 10 s

    clock.advance(timedelta(seconds=1))
    await worker.drain()
    homes = chat.homes_of(BOB)
    assert len(homes) == 2
    assert homes[-1].mine[0].severity == "P1"


async def test_a_previous_holder_sees_the_incident_leave(db: Database, clock: FixedClock) -> None:
    incidents, chat, worker = setup(db, clock)
    made = await incidents.declare(title="Checkout down", actor=ALICE, commander=BOB)
    await worker.drain()
    clock.advance(EVERY)

    await incidents.assign(made.key, "commander", ALICE, actor=ALICE)
    await worker.drain()

    assert [home.mine for home in chat.homes_of(BOB)][-1] == ()


async def test_opening_the_home_shows_the_channels_one_is_in(
    db: Database, clock: FixedClock
) -> None:
    incidents, chat, worker = setup(db, clock)
    made = await incidents.declare(title="Checkout down", actor=ALICE)
    await incidents.declare(title="Search slow", actor=ALICE, severity="P4")
    async with db.transaction() as session:
        locked = await incidents.lock(session, made.id or 0)
        locked.channel_id = "C0CHECKOUT"
        session.add(locked)
    chat.members[BOB] = {"C0CHECKOUT", "C0ELSEWHERE"}

    assert await show_home(db, clock, BOB, every=EVERY)
    assert not await show_home(db, clock, BOB, every=EVERY)  # the waiting row covers it
    await worker.drain()

    (home,) = chat.homes_of(BOB)
    assert [(i.key, i.roles) for i in home.mine] == [(made.key, ())]
    assert [i.title for i in home.open] == ["Checkout down", "Search slow"]
    assert home.open_total == 2


async def test_a_worker_that_dies_mid_publish_leaves_it_to_the_next(
    db: Database, clock: FixedClock
) -> None:
    _, chat, worker = setup(db, clock)
    await show_home(db, clock, BOB, every=EVERY)
    (taken,) = await claim(db, worker="dead", now=clock.now(), lease=timedelta(seconds=60))
    assert taken.kind == HOME

    await worker.drain()
    assert chat.homes_of(BOB) == []  # still leased to the dead worker
    clock.advance(timedelta(seconds=61))
    await worker.drain()

    assert len(chat.homes_of(BOB)) == 1
    async with db.transaction(read_only=True) as session:
        rows = (await session.exec(select(OutboxRow).where(col(OutboxRow.kind) == HOME))).all()
    assert [(r.status, r.claimed_by) for r in rows] == [("done", worker.worker_id)]


async def test_a_name_that_is_not_a_chat_user_is_skipped(db: Database, clock: FixedClock) -> None:
    incidents, _, worker = setup(db, clock)
    await incidents.declare(title="Checkout down", actor="cli:alice", commander="alice")
    await worker.drain()

    async with db.transaction(read_only=True) as session:
        (row,) = (await session.exec(select(OutboxRow).where(col(OutboxRow.kind) == HOME))).all()
    assert (row.status, row.result) == ("done", {"skipped": "alice is not a person the chat knows"})
