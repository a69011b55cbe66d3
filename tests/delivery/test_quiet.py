"""Quiet in monitoring: the card offers Resolve now, a reminder follows, once, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery.quiet import READY, REMINDER, resolve_ready, schedule_resolve_offers
from bot.delivery.transcript import transcript_of
from bot.store.models import Alert, OutboxRow


@pytest.fixture
async def core(database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("WARROOM_INCIDENTS__RESOLVE_QUIET_BY_SEVERITY", '{"P1": "20m"}')
    built = Core.build(load_settings(), clock=clock)
    yield built
    await built.close()


async def _schedule(core: Core, clock: FixedClock) -> list[str]:
    quiet_for = core.settings.incidents.quiet_for
    return await schedule_resolve_offers(core.db, core.incidents, quiet_for, clock.now())


async def _ready(core: Core) -> bool:
    incident = await core.incidents.get("INC-1")
    async with core.db.transaction(read_only=True) as session:
        return await resolve_ready(session, incident)


async def _messages(core: Core) -> list[str]:
    incident = await core.incidents.get("INC-1")
    return [e.text for e in await transcript_of(core.db, incident.id or 0) if e.action == "message"]


def test_the_quiet_period_is_per_severity_with_a_default() -> None:
    settings = load_settings()
    assert settings.incidents.quiet_for("P3") == timedelta(minutes=30)


async def test_quiet_in_monitoring_offers_resolve_now_once_then_reminds(
    core: Core, clock: FixedClock
) -> None:
    made = await core.incidents.declare(title="Checkout down", severity="P1", actor="U1")
    async with core.db.transaction() as session:
        session.add(
            Alert(
                incident_id=made.id,
                source="alertmanager",
                fingerprint="f1",
                status="firing",
                summary="checkout 5xx",
                first_seen=clock.now(),
                last_seen=clock.now(),
            )
        )
    await core.incidents.set_status("INC-1", "monitoring", actor="U1")
    clock.advance(timedelta(minutes=25))
    assert await _schedule(core, clock) == []  # an alert still fires

    async with core.db.transaction() as session:
        alert = (await session.exec(select(Alert))).one()
        alert.status, alert.ends_at = "resolved", clock.now()
        session.add(alert)
    clock.advance(timedelta(minutes=19))
    assert await _schedule(core, clock) == []  # P1 is quiet for 20 min first
    assert not await _ready(core)
    clock.advance(timedelta(minutes=2))
    first, second = await _schedule(core, clock), await _schedule(core, clock)  # two replicas
    assert (first, second) == (["INC-0001"], [])
    assert await _ready(core)
    assert [e.kind for e in await core.incidents.timeline("INC-1")].count(READY) == 1

    await core.delivery().drain()
    assert not [m for m in await _messages(core) if "has been quiet" in m]  # not due yet
    clock.advance(timedelta(minutes=21))
    await core.delivery().drain()
    (reminder,) = [m for m in await _messages(core) if "has been quiet" in m]
    assert reminder.startswith("✅ INC-0001 has been quiet in monitoring since")
    assert "Resolve now" in reminder


async def test_no_reminder_once_it_is_no_longer_quiet(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Queue backlog", severity="P3", actor="U1")
    await core.incidents.set_status("INC-1", "monitoring", actor="U1")
    clock.advance(timedelta(minutes=31))
    assert await _schedule(core, clock) == ["INC-0001"]
    await core.incidents.set_status("INC-1", "mitigating", actor="U1", note="backlog again")
    assert not await _ready(core)
    clock.advance(timedelta(minutes=31))
    await core.delivery().drain()
    assert not [m for m in await _messages(core) if "has been quiet" in m]
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind) == REMINDER)
        (row,) = (await session.exec(query)).all()
    assert row.status == "done"
    assert row.result == {"skipped": "no longer quiet in monitoring"}
