"""The incident lifecycle, on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, timedelta

import pytest
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import FixedClock
from bot.errors import (
    IllegalTransition,
    IncidentNotFound,
    InvalidInput,
    InvalidRole,
    InvalidSeverity,
    UserError,
)
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P0_P3, P1_P4
from bot.store.db import Database
from bot.store.models import Incident, SeveritySource, TimelineEvent
from tests.conftest import T0


async def count_events(db: Database) -> int:
    async with db.transaction(read_only=True) as session:
        return (await session.exec(select(func.count()).select_from(TimelineEvent))).one()


async def test_declare_gives_a_key_a_timeline_and_aware_times(
    incidents: Incidents, clock: FixedClock
) -> None:
    first = await incidents.declare(
        title="Database connection exhaustion", severity="p1", actor="U1", impact="checkout down"
    )
    clock.advance(timedelta(minutes=1))
    second = await incidents.declare(title="Cache failure", actor="U2")

    assert (first.key, second.key) == ("INC-0001", "INC-0002")
    assert first.severity == "P1"
    assert first.severity_source == "person"
    assert second.severity == "P3"
    assert second.severity_source == "default"
    assert "default severity" in second.severity_reason

    stored = await incidents.get("inc-1")
    assert stored.title == "Database connection exhaustion"
    assert stored.impact == "checkout down"
    assert stored.declared_at == T0
    assert stored.declared_at.tzinfo is not None
    assert stored.acknowledged_at == T0
    assert stored.acknowledged_by == "U1"
    events = await incidents.timeline("INC-0001")
    assert [e.kind for e in events] == ["declared"]
    assert events[0].actor == "U1"
    assert events[0].at.utcoffset() == timedelta(0)
    assert "Database connection exhaustion" in events[0].text


async def test_full_lifecycle_writes_each_step_on_the_timeline(
    incidents: Incidents, clock: FixedClock
) -> None:
    await incidents.declare(title="High error rate", actor="alertmanager", acknowledge=False)
    clock.advance(timedelta(minutes=3))
    acked = await incidents.acknowledge("INC-0001", actor="U1")
    assert acked.acknowledged_at == T0 + timedelta(minutes=3)
    await incidents.assign("INC-0001", "lead", "U1", actor="U1")
    await incidents.assign("INC-0001", "communications", "U2", actor="U1")
    await incidents.set_severity("INC-0001", "P2", actor="U1", reason="partial outage")
    for status in ("identified", "mitigating"):
        clock.advance(timedelta(minutes=5))
        await incidents.set_status("INC-0001", status, actor="U1")
    clock.advance(timedelta(minutes=5))
    monitoring = await incidents.set_status("INC-0001", "monitoring", actor="U1")
    assert monitoring.mitigated_at == T0 + timedelta(minutes=18)
    await incidents.note("INC-0001", "error rate back under 0.1%", actor="U2")
    await incidents.add_follow_up("INC-0001", "alert on pool > 80%", actor="U1", owner="U3")
    clock.advance(timedelta(minutes=30))
    resolved = await incidents.resolve(
        "INC-0001", actor="U1", summary="bad deploy", root_cause="pool leak", resolution="rollback"
    )

    assert resolved.status == "resolved"
    assert resolved.resolved_at == T0 + timedelta(minutes=48)
    assert resolved.mitigated_at == T0 + timedelta(minutes=18)
    assert resolved.roles == {"commander": "U1", "communications": "U2"}
    assert (resolved.root_cause, resolved.resolution) == ("pool leak", "rollback")
    kinds = [e.kind for e in await incidents.timeline("INC-0001")]
    assert kinds == [
        "declared",
        "acknowledged",
        "role",
        "role",
        "severity",
        "status",
        "status",
        "status",
        "note",
        "follow_up",
        "resolved",
    ]
    last_two = await incidents.timeline("INC-0001", limit=2)
    assert [e.kind for e in last_two] == ["follow_up", "resolved"]
    follow_ups = await incidents.follow_ups("INC-0001")
    assert [(f.text, f.owner) for f in follow_ups] == [("alert on pool > 80%", "U3")]


@pytest.mark.parametrize(
    ("steps", "error", "needle"),
    [
        ([("ack",)], IllegalTransition, "already acknowledged by U1"),
        ([("status", "investigating")], IllegalTransition, "already investigating"),
        ([("resolve",), ("status", "monitoring")], IllegalTransition, "Reopen it first"),
        ([("resolve",), ("resolve",)], IllegalTransition, "already resolved"),
        ([("resolve",), ("ack",)], IllegalTransition, "Reopen it first"),
        ([("reopen",)], IllegalTransition, "only a resolved incident can be reopened"),
        ([("status", "fixed")], InvalidInput, "use one of investigating"),
        ([("sev", "P9")], InvalidSeverity, "use one of P1, P2, P3, P4"),
        ([("sev", "P1")], UserError, "already P1"),
        ([("assign", "janitor")], InvalidRole, "use one of commander"),
        ([("note", "   ")], InvalidInput, "must not be empty"),
    ],
)
async def test_refused_changes_explain_and_change_nothing(
    incidents: Incidents, db: Database, steps: list[tuple[str, ...]], error: type, needle: str
) -> None:
    await incidents.declare(title="Replication lag", severity="P1", actor="U1")
    actions = {
        "ack": lambda *a: incidents.acknowledge("INC-0001", actor="U1"),
        "status": lambda s: incidents.set_status("INC-0001", s, actor="U1"),
        "resolve": lambda *a: incidents.resolve("INC-0001", actor="U1"),
        "reopen": lambda *a: incidents.reopen("INC-0001", actor="U1"),
        "sev": lambda s: incidents.set_severity("INC-0001", s, actor="U1"),
        "assign": lambda r: incidents.assign("INC-0001", r, "U9", actor="U1"),
        "note": lambda t: incidents.note("INC-0001", t, actor="U1"),
    }
    *setup, last = steps
    for name, *args in setup:
        await actions[name](*args)
    before = (await incidents.get("INC-0001")).model_dump()
    events_before = await count_events(db)

    with pytest.raises(error, match=needle):
        await actions[last[0]](*last[1:])

    assert (await incidents.get("INC-0001")).model_dump() == before
    assert await count_events(db) == events_before


async def test_unknown_incident_is_an_error_not_none(incidents: Incidents) -> None:
    with pytest.raises(IncidentNotFound, match="No incident INC-0042"):
        await incidents.get("INC-42")
    with pytest.raises(IncidentNotFound):
        await incidents.acknowledge("OPS-1", actor="U1")
    with pytest.raises(IncidentNotFound):
        await incidents.get("not a key")


async def test_reopen_clears_resolution_and_keeps_history(
    incidents: Incidents, clock: FixedClock
) -> None:
    await incidents.declare(title="Cache failure", actor="U1")
    await incidents.set_status("INC-1", "monitoring", actor="U1")
    clock.advance(timedelta(minutes=10))
    await incidents.resolve("INC-1", actor="U1")
    clock.advance(timedelta(minutes=10))
    reopened = await incidents.reopen("INC-1", actor="U2", reason="alert fired again")
    assert reopened.status == "investigating"
    assert reopened.resolved_at is None
    assert reopened.mitigated_at is None
    last = (await incidents.timeline("INC-1"))[-1]
    assert last.kind == "reopened"
    assert "alert fired again" in last.text
    assert last.data["resolved_at"] == (T0 + timedelta(minutes=10)).isoformat()


async def test_automation_never_overrides_a_person(incidents: Incidents) -> None:
    await incidents.declare(title="High latency", actor="alertmanager", acknowledge=False)
    by_rule = await incidents.set_severity(
        "INC-1", "P2", actor="warroom", reason="rule latency-p95", source=SeveritySource.RULE
    )
    assert (by_rule.severity, by_rule.severity_source) == ("P2", "rule")
    await incidents.set_severity("INC-1", "P3", actor="U1", reason="internal only")
    kept = await incidents.set_severity(
        "INC-1", "P1", actor="warroom", reason="rule db-pool-critical", source=SeveritySource.RULE
    )
    assert (kept.severity, kept.severity_source, kept.severity_reason) == (
        "P3",
        "person",
        "internal only",
    )
    last = (await incidents.timeline("INC-1"))[-1]
    assert last.kind == "severity_kept"
    assert "rule db-pool-critical suggests P1; keeping P3" in last.text


async def test_a_failing_listener_rolls_back_the_change_and_its_event(db: Database) -> None:
    """The incident change, its timeline event and listener rows share one transaction."""
    calls: list[str] = []

    async def listener(
        session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        calls.append(events[-1].kind)
        if events[-1].kind == "acknowledged":
            raise RuntimeError("outbox write failed")

    incidents = Incidents(db, clock=FixedClock(T0), scheme=P1_P4, listeners=[listener])
    await incidents.declare(title="Disk full", actor="pd", acknowledge=False)
    with pytest.raises(RuntimeError):
        await incidents.acknowledge("INC-1", actor="U1")
    assert calls == ["declared", "acknowledged"]
    assert (await incidents.get("INC-1")).acknowledged_at is None
    assert [e.kind for e in await incidents.timeline("INC-1")] == ["declared"]


async def test_configured_scheme_and_key_format(db: Database) -> None:
    incidents = Incidents(db, clock=FixedClock(T0), scheme=P0_P3, key_prefix="OPS", key_digits=3)
    made = await incidents.declare(title="Auth down for everyone", severity="P0", actor="U1")
    assert made.key == "OPS-001"
    assert made.severity == "P0"
    default = await incidents.declare(title="Docs typo", actor="U1")
    assert default.severity == "P2"
    with pytest.raises(InvalidSeverity, match="P0, P1, P2, P3"):
        await incidents.declare(title="x", severity="P4", actor="U1")
    assert (await incidents.get("ops-2")).key == "OPS-002"


async def test_list_filters(incidents: Incidents) -> None:
    await incidents.declare(title="a", severity="P1", actor="U1", service="db")
    await incidents.declare(title="b", severity="P2", actor="U1", service="cache")
    await incidents.declare(title="c", severity="P1", actor="U1", service="db")
    await incidents.resolve("INC-3", actor="U1")
    assert [i.key for i in await incidents.find()] == ["INC-0003", "INC-0002", "INC-0001"]
    assert [i.key for i in await incidents.find(open_only=True)] == ["INC-0002", "INC-0001"]
    assert [i.key for i in await incidents.find(severity="p1")] == ["INC-0003", "INC-0001"]
    assert [i.key for i in await incidents.find(service="cache")] == ["INC-0002"]
    assert [i.key for i in await incidents.find(statuses=["resolved"])] == ["INC-0003"]


async def test_concurrent_declares_get_distinct_gap_free_keys(db: Database) -> None:
    incidents = Incidents(db, clock=FixedClock(T0), scheme=P1_P4)
    made = await asyncio.gather(
        *(incidents.declare(title=f"storm {n}", actor="am", acknowledge=False) for n in range(50))
    )
    keys = sorted(i.key for i in made)
    assert keys == [f"INC-{n:04d}" for n in range(1, 51)]
    async with db.transaction(read_only=True) as session:
        stored = (await session.exec(select(col(Incident.key)))).all()
        events = (await session.exec(select(func.count()).select_from(TimelineEvent))).one()
    assert sorted(stored) == keys
    assert events == 50


async def test_times_round_trip_as_utc(incidents: Incidents, clock: FixedClock) -> None:
    from zoneinfo import ZoneInfo

    clock._now = T0.astimezone(ZoneInfo("America/New_York"))  # an aware non-UTC time
    made = await incidents.declare(title="tz", actor="U1")
    stored = await incidents.get(made.key)
    assert stored.declared_at == T0
    assert stored.declared_at.tzinfo == UTC
