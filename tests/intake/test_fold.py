"""Intake rules on SQLite and Postgres: grouping, repeats, resolves, reopen, severity."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from bot.clock import FixedClock
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
from bot.intake.classify import DEFAULT_RULES, Classifier
from bot.intake.fold import Endpoint, Intake, IntakePolicy
from bot.store.db import Database
from bot.store.models import Alert, Incident, SeveritySource, TimelineEvent
from tests.conftest import T0

AM = Endpoint(name="alertmanager", source="alertmanager")
EVENTS = Endpoint(name="events", source="events", group_by=("alertname",))


def alert(
    name: str,
    *,
    status: str = "firing",
    fp: str | None = None,
    group: str | None = "g1",
    labels: dict[str, str] | None = None,
    values: dict[str, float] | None = None,
    hint: str | None = None,
) -> NormalizedAlert:
    return NormalizedAlert(
        source="alertmanager",
        fingerprint=fp or f"fp-{name}",
        status=AlertStatus(status),
        labels={"alertname": name, **(labels or {})},
        annotations={"summary": f"{name} summary"},
        summary=f"{name} summary",
        group_key=group,
        starts_at=T0 - timedelta(minutes=2),
        links={"generator": f"http://prom/graph?{name}"},
        values=values or {},
        severity_hint=hint,
    )


def delivery(*alerts: NormalizedAlert, **extra: object) -> Delivery:
    return Delivery(source="alertmanager", alerts=alerts, extra=dict(extra))


class Harness:
    """Sends deliveries one at a time, through ``Intake.receive`` or, ``batched``, through the
    batch fold (``receive_many``, as the server's batcher does): every rule holds on both."""

    def __init__(
        self, db: Database, clock: FixedClock, policy: IntakePolicy, *, batched: bool = False
    ) -> None:
        self.batched = batched
        self.db = db
        self.clock = clock
        self.incidents = Incidents(db, clock=clock, scheme=P1_P4)
        self.intake = Intake(
            db,
            self.incidents,
            Classifier(P1_P4, DEFAULT_RULES),
            clock=clock,
            policy=policy,
        )
        self.sent = 0

    async def send(self, *alerts: NormalizedAlert, endpoint: Endpoint = AM, key: str = ""):
        self.sent += 1
        if self.batched:
            found = await self.intake.receive_many(
                [(endpoint, delivery(*alerts), key or f"d{self.sent}")]
            )
            return found[0]
        return await self.intake.receive(
            endpoint, delivery(*alerts), delivery_key=key or f"d{self.sent}"
        )

    async def count(self, model: type) -> int:
        async with self.db.transaction(read_only=True) as session:
            return (await session.exec(select(func.count()).select_from(model))).one()

    async def alerts(self) -> list[Alert]:
        async with self.db.transaction(read_only=True) as session:
            return list((await session.exec(select(Alert).order_by(col(Alert.id)))).all())


@pytest.fixture(params=["single", "batched"])
def batched(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "batched")


@pytest.fixture
def h(db: Database, clock: FixedClock, batched: bool) -> Harness:
    return Harness(db, clock, IntakePolicy(), batched=batched)


async def test_a_new_group_opens_one_incident_with_its_alerts(h: Harness) -> None:
    result = await h.send(alert("HighQueryLatency"), alert("RedisInstanceDown"))
    assert result.opened == ["INC-0001"]
    assert result.alerts == 2
    incident = await h.incidents.get("INC-0001")
    assert incident.title == "HighQueryLatency summary"
    assert incident.severity == "P2"
    assert incident.severity_source == "rule"
    assert incident.severity_reason == "rule high-query-latency: labels.alertname=HighQueryLatency"
    assert incident.detected_at == T0 - timedelta(minutes=2)
    assert incident.acknowledged_at is None
    stored = await h.alerts()
    assert [(a.fingerprint, a.count, a.links["generator"]) for a in stored] == [
        ("fp-HighQueryLatency", 1, "http://prom/graph?HighQueryLatency"),
        ("fp-RedisInstanceDown", 1, "http://prom/graph?RedisInstanceDown"),
    ]


async def test_repeats_update_count_and_last_seen_only(h: Harness, clock: FixedClock) -> None:
    await h.send(alert("HighQueryLatency"))
    events = await h.count(TimelineEvent)
    clock.advance(timedelta(minutes=5))
    again = await h.send(alert("HighQueryLatency"))
    assert again.opened == []
    assert again.updated == ["INC-0001"]
    (stored,) = await h.alerts()
    assert stored.count == 2
    assert stored.last_seen == T0 + timedelta(minutes=5)
    assert stored.first_seen == T0
    assert await h.count(Incident) == 1
    assert await h.count(TimelineEvent) == events  # a repeat writes no timeline noise


async def test_exact_retry_counts_once(h: Harness) -> None:
    first = await h.send(alert("HighQueryLatency"), key="sha256:abc")
    retry = await h.send(alert("HighQueryLatency"), key="sha256:abc")
    assert first.opened == ["INC-0001"]
    assert retry.duplicate
    (stored,) = await h.alerts()
    assert stored.count == 1


async def test_all_resolved_moves_to_monitoring_then_refire_reopens(
    h: Harness, clock: FixedClock
) -> None:
    await h.send(alert("HighReplicationLag"), alert("HighQueryLatency"))
    clock.advance(timedelta(minutes=10))
    half = await h.send(alert("HighReplicationLag", status="resolved"))
    assert (await h.incidents.get("INC-1")).status == "investigating"
    assert "HighReplicationLag: resolved on INC-0001" in half.decisions
    await h.send(alert("HighQueryLatency", status="resolved"))
    incident = await h.incidents.get("INC-1")
    assert incident.status == "monitoring"
    assert incident.mitigated_at == T0 + timedelta(minutes=10)
    timeline = await h.incidents.timeline("INC-1")
    assert "resolve the incident when you are satisfied" in timeline[-1].text

    clock.advance(timedelta(minutes=1))
    await h.send(alert("HighQueryLatency"))
    assert (await h.incidents.get("INC-1")).status == "investigating"
    assert await h.count(Incident) == 1


async def test_refire_within_the_window_reopens_after_it_opens_anew(
    h: Harness, clock: FixedClock
) -> None:
    await h.send(alert("RedisInstanceDown"))
    await h.incidents.resolve("INC-1", actor="U1")
    clock.advance(timedelta(minutes=59))
    reopened = await h.send(alert("RedisInstanceDown"))
    assert reopened.decisions[0] == "RedisInstanceDown: reopens INC-0001"
    assert (await h.incidents.get("INC-1")).status == "investigating"
    await h.incidents.resolve("INC-1", actor="U1")
    clock.advance(timedelta(minutes=61))
    fresh = await h.send(alert("RedisInstanceDown"))
    assert fresh.opened == ["INC-0002"]
    assert (await h.incidents.get("INC-1")).status == "resolved"


async def test_late_resolve_of_a_closed_incident_does_not_reopen(h: Harness) -> None:
    await h.send(alert("RedisInstanceDown"))
    await h.incidents.resolve("INC-1", actor="U1")
    await h.send(alert("RedisInstanceDown", status="resolved"))
    assert (await h.incidents.get("INC-1")).status == "resolved"
    (stored,) = await h.alerts()
    assert stored.status == "resolved"


async def test_resolved_alert_of_no_known_group_is_ignored(h: Harness) -> None:
    result = await h.send(alert("HighQueryLatency", status="resolved"))
    assert result.ignored == 1
    assert result.opened == []
    assert await h.count(Incident) == 0


async def test_auto_resolve_policy(db: Database, clock: FixedClock, batched: bool) -> None:
    h = Harness(db, clock, IntakePolicy(when_all_resolved="resolve"), batched=batched)
    await h.send(alert("HighQueryLatency"))
    await h.send(alert("HighQueryLatency", status="resolved"))
    incident = await h.incidents.get("INC-1")
    assert incident.status == "resolved"
    assert incident.summary == "all 1 alert(s) resolved"


async def test_severity_is_the_highest_of_its_alerts_unless_a_person_set_it(
    h: Harness,
) -> None:
    await h.send(alert("HighQueryLatency"))
    assert (await h.incidents.get("INC-1")).severity == "P2"
    await h.send(alert("db", values={"pool_utilization": 97.5}, fp="pool"))
    raised = await h.incidents.get("INC-1")
    assert raised.severity == "P1"
    assert raised.severity_reason == (
        "rule connection-pool-above-95: values.pool_utilization=97.5 > 95"
    )
    await h.send(alert("minor", hint="info", fp="minor"))  # lower: never lowers
    assert (await h.incidents.get("INC-1")).severity == "P1"

    await h.incidents.set_severity("INC-1", "P3", actor="U1", reason="internal only")
    await h.send(alert("CriticalConnectionPoolUtilization", fp="crit"))
    kept = await h.incidents.get("INC-1")
    assert (kept.severity, kept.severity_source) == ("P3", SeveritySource.PERSON.value)
    last = (await h.incidents.timeline("INC-1"))[-1]
    assert last.kind == "severity_kept"
    assert "rule db-pool-critical: labels.alertname=CriticalConnectionPoolUtilization" in (
        last.text
    )


async def test_groups_by_labels_for_senders_without_groups(h: Harness) -> None:
    await h.send(alert("disk", group=None, fp="a", labels={"host": "a"}), endpoint=EVENTS)
    await h.send(alert("disk", group=None, fp="b", labels={"host": "b"}), endpoint=EVENTS)
    await h.send(alert("cpu", group=None, fp="c"), endpoint=EVENTS)
    assert await h.count(Incident) == 2
    assert len(await h.alerts()) == 3


async def test_silent_group_does_not_feed_a_stale_open_incident(
    h: Harness, clock: FixedClock
) -> None:
    await h.send(alert("disk", group=None, fp="a"), endpoint=EVENTS)
    clock.advance(timedelta(hours=25))
    later = await h.send(alert("disk", group=None, fp="a"), endpoint=EVENTS)
    assert later.opened == ["INC-0002"]


async def test_acknowledge_from_the_sender(h: Harness) -> None:
    await h.send(alert("HighQueryLatency"))
    ack = Delivery(
        source="events", alerts=(alert("HighQueryLatency"),), extra={"action": "acknowledge"}
    )
    await h.intake.receive(AM, ack, delivery_key="ack-1")
    incident = await h.incidents.get("INC-1")
    assert incident.acknowledged_by == "alertmanager"


async def test_dry_run_writes_nothing(h: Harness) -> None:
    result = await h.intake.receive(
        AM, delivery(alert("CriticalConnectionPoolUtilization")), delivery_key="x", dry_run=True
    )
    assert result.opened == ["INC-0001"]
    assert result.decisions[0].startswith(
        "CriticalConnectionPoolUtilization: opens INC-0001 (P1: rule db-pool-critical"
    )
    assert result.decisions[-1] == "dry run: nothing was written"
    assert await h.count(Incident) == 0
    again = await h.send(alert("CriticalConnectionPoolUtilization"), key="x")
    assert again.opened == ["INC-0001"]  # the key was not taken by the dry run


async def test_concurrent_deliveries_for_one_new_group_open_one_incident(h: Harness) -> None:
    results = await asyncio.gather(
        *(h.send(alert(f"a{n}", fp=f"fp{n}", group="storm")) for n in range(30))
    )
    assert sum(len(r.opened) for r in results) == 1
    assert await h.count(Incident) == 1
    assert len(await h.alerts()) == 30
