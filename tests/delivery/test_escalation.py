"""Escalation of an incident nobody acknowledges: scheduled outbox rows, re-checked when due.

Time moves with the FixedClock; PagerDuty is the strict stand-in on loopback. P1's response
time is 15 minutes (the runbooks' p1-p4 scheme). The configuration here: P1 and P2 page
``oncall``; escalation step 1 (at the response time) pages ``secondary``, step 2, 10 minutes
later, ``manager``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import paging
from bot.delivery.transcript import transcript_of
from bot.delivery.worker import DeliveryWorker
from bot.store.models import OutboxRow, SeveritySource
from integrations.pagerduty import pagerduty_pager
from tests.conftest import _empty_pg
from tests.fakes.pagerduty import FakePagerDuty

KEYS = {"oncall": "a" * 32, "secondary": "b" * 32, "manager": "d" * 32}


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty(set(KEYS.values())) as fake:
        yield fake


def config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    targets = ""
    for name, key in KEYS.items():
        monkeypatch.setenv(f"T_PD_{name.upper()}", key)
        targets += f"    {name}: {{routing_key_env: T_PD_{name.upper()}, url: '{url}'}}\n"
    path = tmp_path / "warroom.yaml"
    path.write_text(
        "paging:\n"
        f"  pagerduty:\n{targets}"
        "  rules:\n"
        "    - {severities: [P1, P2], target: oncall}\n"
        "  escalation:\n"
        "    - {page: secondary}\n"
        "    - {page: manager, after: 10m}\n"
    )
    return path


class Cores:
    """Cores on one database, as replicas (or restarts) of the server would be."""

    def __init__(self, path: Path, clock: FixedClock) -> None:
        self.path = path
        self.clock = clock
        self.made: list[Core] = []

    def new(self) -> Core:
        core = Core.build(load_settings(self.path), clock=self.clock)
        self.made.append(core)
        return core

    def worker(self, core: Core, name: str) -> DeliveryWorker:
        return core.delivery(pager=pagerduty_pager(core.settings), worker_id=name)

    async def close(self) -> None:
        for core in self.made:
            await core.close()


@pytest.fixture
async def cores(
    database_url: str,
    clock: FixedClock,
    tmp_path: Path,
    pd: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cores]:
    made = Cores(config(tmp_path, pd.url, monkeypatch, database_url), clock)
    yield made
    await made.close()


def paged(pd: FakePagerDuty, target: str) -> list[str]:
    return [e["event_action"] for e in pd.events if e["routing_key"] == KEYS[target]]


async def escalations(core: Core, key: str) -> list[int]:
    events = await core.incidents.timeline(key)
    return [int(e.data["step"]) for e in events if e.kind == paging.ESCALATED]


async def escalate_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind) == paging.ESCALATE)
        return list((await session.exec(query.order_by(col(OutboxRow.id)))).all())


async def test_escalation_fires_exactly_once_with_two_workers_on_one_database(
    pg_migrated: str,
    clock: FixedClock,
    tmp_path: Path,
    pd: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _empty_pg(pg_migrated)
    replicas = Cores(config(tmp_path, pd.url, monkeypatch, pg_migrated), clock)
    try:
        first, second = replicas.new(), replicas.new()
        workers = [replicas.worker(first, "a"), replicas.worker(second, "b")]

        async def both() -> None:
            await asyncio.gather(*(w.drain() for w in workers))

        made = await first.incidents.declare(
            title="checkout down", actor="alertmanager", severity="P1", acknowledge=False
        )
        await both()
        assert paged(pd, "oncall") == ["trigger"]
        (row,) = await escalate_rows(first)
        assert row.next_attempt_at == made.declared_at + timedelta(minutes=15)

        clock.advance(timedelta(minutes=14, seconds=59))
        await both()
        assert await escalations(first, made.key) == []

        clock.advance(timedelta(seconds=2))
        await both()
        await both()
        assert await escalations(first, made.key) == [1]
        assert paged(pd, "secondary") == ["trigger"]
        assert paged(pd, "manager") == []
        said = [t.text for t in await transcript_of(first.db, made.id or 0)]
        renotified = [t for t in said if t.startswith("⏰")]
        assert len(renotified) == 1
        assert "still not acknowledged, 15 min after it was declared" in renotified[0]
        assert "escalation step 1 of 2, paging `secondary`" in renotified[0]

        clock.advance(timedelta(minutes=10))
        await both()
        await both()
        assert await escalations(first, made.key) == [1, 2]
        assert paged(pd, "manager") == ["trigger"]

        clock.advance(timedelta(hours=6))  # no third step
        await both()
        assert await escalations(first, made.key) == [1, 2]
        assert [e["dedup_key"] for e in pd.events] == [made.key] * 3

        # Acknowledging acknowledges every target paged for it.
        await second.incidents.acknowledge(made.key, actor="U0ALICE")
        await both()
        for target in KEYS:
            assert paged(pd, target) == ["trigger", "acknowledge"], target
    finally:
        await replicas.close()
        _empty_pg(pg_migrated)


async def test_acknowledged_in_time_nothing_escalates(
    cores: Cores, clock: FixedClock, pd: FakePagerDuty
) -> None:
    core = cores.new()
    work = cores.worker(core, "a")
    made = await core.incidents.declare(
        title="api errors", actor="alertmanager", severity="P1", acknowledge=False
    )
    await work.drain()
    clock.advance(timedelta(minutes=10))
    await core.incidents.acknowledge(made.key, actor="U0ALICE")
    await work.drain()
    clock.advance(timedelta(hours=2))
    await work.drain()
    assert await escalations(core, made.key) == []
    assert paged(pd, "oncall") == ["trigger", "acknowledge"]
    assert paged(pd, "secondary") == paged(pd, "manager") == []
    (row,) = await escalate_rows(core)
    assert row.status == "done"
    assert row.result == {"skipped": "acknowledged by U0ALICE"}
    said = [t.text for t in await transcript_of(core.db, made.id or 0)]
    assert not [t for t in said if t.startswith("⏰")]


async def test_a_person_declaring_has_acknowledged_so_is_paged_but_never_escalated(
    cores: Cores, clock: FixedClock, pd: FakePagerDuty
) -> None:
    core = cores.new()
    work = cores.worker(core, "a")
    made = await core.incidents.declare(title="data loss", actor="U0ALICE", severity="P1")
    await work.drain()
    clock.advance(timedelta(hours=2))
    await work.drain()
    assert paged(pd, "oncall") == ["trigger"]
    assert await escalate_rows(core) == []
    assert await escalations(core, made.key) == []


async def test_the_scheduled_step_survives_a_restart(
    cores: Cores, clock: FixedClock, pd: FakePagerDuty
) -> None:
    before = cores.new()
    made = await before.incidents.declare(
        title="queue stuck", actor="alertmanager", severity="P2", acknowledge=False
    )
    await cores.worker(before, "old").drain()
    await before.close()
    cores.made.remove(before)

    clock.advance(timedelta(hours=1, seconds=1))  # P2: one hour
    after = cores.new()
    await cores.worker(after, "new").drain()
    await cores.worker(after, "new").drain()
    assert await escalations(after, made.key) == [1]
    assert paged(pd, "secondary") == ["trigger"]


async def test_a_raised_severity_pages_and_brings_the_escalation_forward(
    cores: Cores, clock: FixedClock, pd: FakePagerDuty
) -> None:
    core = cores.new()
    work = cores.worker(core, "a")
    made = await core.incidents.declare(
        title="slow pages",
        actor="alertmanager",
        severity="P3",
        severity_source=SeveritySource.RULE,
        acknowledge=False,
    )
    await work.drain()
    assert pd.events == []  # no rule pages a P3
    assert await escalate_rows(core) == []
    clock.advance(timedelta(minutes=5))
    await core.incidents.set_severity(
        made.key, "P1", actor="alertmanager", source=SeveritySource.RULE
    )
    await work.drain()
    assert paged(pd, "oncall") == ["trigger"]
    clock.advance(timedelta(minutes=10, seconds=1))  # 15 min after the declaration
    await work.drain()
    await work.drain()
    assert await escalations(core, made.key) == [1]
    # Lowered again, the P1 step already fired; a P2 step 1 is not fired a second time.
    await core.incidents.set_severity(made.key, "P2", actor="U0BOB")
    clock.advance(timedelta(hours=2))
    await work.drain()
    await work.drain()
    assert (await escalations(core, made.key)).count(1) == 1
    assert paged(pd, "secondary") == ["trigger"]
