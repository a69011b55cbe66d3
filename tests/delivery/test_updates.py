"""Status updates and the reminders to post them, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery.transcript import transcript_of
from bot.delivery.updates import schedule_reminders
from bot.store.models import OutboxRow


@pytest.fixture
async def core(database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    built = Core.build(load_settings(), clock=clock)
    yield built
    await built.close()


async def reminders(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind) == "reminder").order_by(OutboxRow.id)
        return list((await session.exec(query)).all())


async def test_an_update_is_posted_from_the_template(core: Core, clock: FixedClock) -> None:
    made = await core.incidents.declare(title="Replication lag", severity="P2", actor="U1")
    clock.advance(timedelta(minutes=20))
    await core.updates.post(
        "INC-1",
        actor="U1",
        status="mitigating",
        progress="routed reads to primary",
        impact="stale reads for EU",
        eta="1 h",
    )
    incident = await core.incidents.get("INC-1")
    assert incident.status == "mitigating"
    assert incident.impact == "stale reads for EU"
    await core.delivery().drain()
    messages = [e.text for e in await transcript_of(core.db, made.id or 0) if e.action == "message"]
    assert messages[-1] == (
        "INCIDENT UPDATE: Replication lag\n"
        "Status: Mitigating\n"
        "Progress: routed reads to primary\n"
        "Current Impact: stale reads for EU\n"
        "ETA: 1 h\n"
        "Next Update: 2026-11-26 11:20 UTC"
    )
    kinds = [e.kind for e in await core.incidents.timeline("INC-1") if e.kind != "channel"]
    assert kinds[-2:] == ["status", "update"]


async def test_one_reminder_per_overdue_period_however_many_schedulers(
    core: Core, clock: FixedClock
) -> None:
    await core.incidents.declare(title="Checkout down", severity="P1", actor="U1")
    clock.advance(timedelta(minutes=29))
    assert await schedule_reminders(core.db, core.incidents, clock.now()) == []
    clock.advance(timedelta(minutes=2))
    first = await schedule_reminders(core.db, core.incidents, clock.now())
    second = await schedule_reminders(core.db, core.incidents, clock.now())  # another replica
    assert (first, second) == (["INC-0001"], [])
    (row,) = await reminders(core)
    assert row.payload["overdue_min"] == 31

    await core.updates.post("INC-1", actor="U1", progress="pool raised")
    clock.advance(timedelta(minutes=10))
    assert await schedule_reminders(core.db, core.incidents, clock.now()) == []

    await core.updates.snooze("INC-1", actor="U1", minutes=60)
    clock.advance(timedelta(minutes=40))  # 50 min since the update, but snoozed
    assert await schedule_reminders(core.db, core.incidents, clock.now()) == []
    clock.advance(timedelta(minutes=31))
    assert await schedule_reminders(core.db, core.incidents, clock.now()) == ["INC-0001"]
    assert len(await reminders(core)) == 2


async def test_resolved_incidents_get_no_reminders(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Docs typo", severity="P4", actor="U1")
    await core.incidents.resolve("INC-1", actor="U1")
    clock.advance(timedelta(days=3))
    assert await schedule_reminders(core.db, core.incidents, clock.now()) == []


async def test_a_storms_open_incidents_are_scanned_in_a_few_queries(
    core: Core, clock: FixedClock
) -> None:
    """A storm leaves thousands open: a query per incident held SQLite's one writer for
    tens of seconds, and every fold waited behind it."""
    for n in range(25):
        await core.incidents.declare(title=f"Storm {n}", severity="P1", actor="U1")
    await core.updates.snooze("INC-0003", actor="U1", minutes=120)
    clock.advance(timedelta(minutes=31))
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = core.db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        due = await schedule_reminders(core.db, core.incidents, clock.now())
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert len(due) == 24
    assert "INC-0003" not in due  # snoozed: it waits
    scans = [s for s in statements if "outbox" not in s.lower()]
    assert len(scans) <= 3, f"{len(scans)} reads for 25 incidents"
