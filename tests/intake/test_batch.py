"""The intake batcher, as a sender sees it, on SQLite and Postgres: deliveries that arrive
together are folded in one transaction and each answered after its commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col, func, select

from bot.clock import FixedClock
from bot.errors import StorageUnavailable
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
from bot.intake.batch import Batcher
from bot.intake.classify import DEFAULT_RULES, Classification, Classifier
from bot.intake.fold import Endpoint, Intake, IntakeResult
from bot.store.db import Database
from bot.store.models import Alert, Incident, TimelineEvent, WebhookDelivery
from tests.conftest import T0

AM = Endpoint(name="alertmanager", source="alertmanager")


def alert(name: str, fp: str, *, group: str = "g1", status: str = "firing") -> NormalizedAlert:
    return NormalizedAlert(
        source="alertmanager",
        fingerprint=fp,
        status=AlertStatus(status),
        labels={"alertname": name},
        annotations={"summary": f"{name} summary"},
        summary=f"{name} summary",
        group_key=group,
        starts_at=T0 - timedelta(minutes=1),
    )


def delivery(*alerts: NormalizedAlert) -> Delivery:
    return Delivery(source="alertmanager", alerts=alerts)


class _Poisoned(Classifier):
    """Fails on alerts named ``Poison``: a delivery whose processing raises."""

    def classify(self, alert: NormalizedAlert) -> Classification:
        if alert.name == "Poison":
            raise ValueError("poisoned alert")
        return super().classify(alert)


def make(db: Database, clock: FixedClock, *, classifier: Classifier | None = None) -> Intake:
    incidents = Incidents(db, clock=clock, scheme=P1_P4)
    return Intake(db, incidents, classifier or Classifier(P1_P4, DEFAULT_RULES), clock=clock)


async def count(db: Database, model: type) -> int:
    async with db.transaction(read_only=True) as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def send_all(batcher: Batcher, items: list[tuple[Delivery, str]]) -> list[object]:
    return await asyncio.gather(
        *(batcher.receive(AM, d, delivery_key=k) for d, k in items), return_exceptions=True
    )


async def test_concurrent_deliveries_for_a_new_group_open_one_incident(
    db: Database, clock: FixedClock
) -> None:
    batcher = Batcher(make(db, clock))
    items = [(delivery(alert("DiskFull", f"fp-{n}")), f"d{n}") for n in range(40)]
    results = await send_all(batcher, items)
    assert all(isinstance(r, IntakeResult) for r in results)
    assert await count(db, Incident) == 1
    assert await count(db, Alert) == 40
    opened = [r.opened for r in results if isinstance(r, IntakeResult) and r.opened]
    assert opened == [["INC-0001"]]  # exactly one delivery opened it
    assert batcher.batches < 40  # they were folded together
    await batcher.close()


async def test_two_batchers_on_one_database_open_one_incident(
    database_url: str, clock: FixedClock
) -> None:
    one, two = Database(database_url), Database(database_url)  # two replicas' pools
    try:
        first, second = Batcher(make(one, clock)), Batcher(make(two, clock))
        calls = [
            (first if n % 2 else second).receive(
                AM, delivery(alert("DiskFull", f"fp-{n}", group=f"g{n % 3}")), delivery_key=f"d{n}"
            )
            for n in range(60)
        ]
        results = await asyncio.gather(*calls)
        assert sum(r.alerts for r in results) == 60
        assert await count(one, Incident) == 3  # one per group, none twice
        assert await count(one, Alert) == 60
        await first.close()
        await second.close()
    finally:
        await one.dispose()
        await two.dispose()


async def test_every_alert_is_stored_once_and_repeats_count(
    db: Database, clock: FixedClock
) -> None:
    batcher = Batcher(make(db, clock))
    # Open 5 groups, then 200 deliveries: new alerts, repeats of them, exact retries.
    await send_all(
        batcher, [(delivery(alert("Q", f"open-{g}", group=f"g{g}")), f"o{g}") for g in range(5)]
    )
    items = [
        (delivery(alert("Q", f"fp-{n % 100}", group=f"g{n % 5}")), f"d{n}") for n in range(200)
    ]
    items += [(delivery(alert("Q", "fp-1", group="g1")), "d1")] * 3  # exact retries of d1
    results = await send_all(batcher, items)
    assert all(isinstance(r, IntakeResult) for r in results)
    duplicates = [r for r in results if isinstance(r, IntakeResult) and r.duplicate]
    assert len(duplicates) == 3
    assert await count(db, Incident) == 5
    assert await count(db, Alert) == 105
    assert await count(db, WebhookDelivery) == 205
    async with db.transaction(read_only=True) as session:
        counts = (await session.exec(select(Alert.fingerprint, Alert.count))).all()
    by_fp = dict(counts)
    assert all(by_fp[f"fp-{n}"] == 2 for n in range(100))  # each delivered twice
    # One timeline event per new alert; the repeats add none.
    async with db.transaction(read_only=True) as session:
        alert_events = (
            await session.exec(select(func.count()).where(col(TimelineEvent.kind) == "alert"))
        ).one()
    assert alert_events == 105
    await batcher.close()


async def test_a_failing_delivery_does_not_lose_the_others(db: Database, clock: FixedClock) -> None:
    batcher = Batcher(make(db, clock, classifier=_Poisoned(P1_P4, DEFAULT_RULES)))
    items = [(delivery(alert("Good", f"fp-{n}")), f"d{n}") for n in range(10)]
    items.insert(5, (delivery(alert("Poison", "bad")), "bad"))
    results = await send_all(batcher, items)
    assert isinstance(results[5], ValueError)
    good = [r for r in results if isinstance(r, IntakeResult)]
    assert len(good) == 10
    assert await count(db, Alert) == 10
    assert await count(db, Incident) == 1
    assert await count(db, WebhookDelivery) == 10  # the failed one can be retried
    await batcher.close()


async def test_database_away_answers_storage_unavailable_for_every_delivery(
    clock: FixedClock,
) -> None:
    # A Postgres server that is not there (port 1). SQLite's 503 through the batcher is
    # tests/web/test_webhooks.py's test_sqlite_locked_gives_503_then_the_retry_counts_once.
    away = Database("postgresql://postgres@127.0.0.1:1/warroom", connect_timeout=1)
    try:
        batcher = Batcher(make(away, clock))
        items = [(delivery(alert("DiskFull", f"fp-{n}")), f"d{n}") for n in range(8)]
        results = await asyncio.wait_for(send_all(batcher, items), 20)
        assert all(isinstance(r, StorageUnavailable) for r in results)
        await batcher.close()
    finally:
        await away.dispose()


async def test_a_batch_past_its_deadline_is_rolled_back(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stuck(self: Intake, deliveries: object) -> list[IntakeResult]:
        async with db.transaction() as session:  # writes, then hangs before its commit
            session.add(WebhookDelivery(endpoint="x", delivery_key="k", received_at=T0))
            await session.flush()
            await asyncio.sleep(5)
        return []

    monkeypatch.setattr(Intake, "receive_many", stuck)
    batcher = Batcher(make(db, clock), timeout=0.3)
    results = await send_all(batcher, [(delivery(alert("DiskFull", "fp")), "d")])
    assert isinstance(results[0], TimeoutError)  # the webhook answers 503
    assert await count(db, WebhookDelivery) == 0  # refused, so not stored
    await batcher.close()


async def test_deliveries_without_alerts_in_a_batch(db: Database, clock: FixedClock) -> None:
    batcher = Batcher(make(db, clock))
    results = await send_all(batcher, [(delivery(), "empty"), (delivery(), "empty-2")])
    assert all(isinstance(r, IntakeResult) and r.alerts == 0 for r in results)
    assert await count(db, WebhookDelivery) == 2
    await batcher.close()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_folding_into_a_big_incident_reads_only_the_batchs_alert_rows(
    db: Database, clock: FixedClock
) -> None:
    # A storm's incidents grow by thousands of alerts; a fold round that read every alert row
    # of its incidents got slower with each round. It looks its rows up by identity instead.
    intake = make(db, clock)
    big = delivery(*(alert("Q", f"old-{n}") for n in range(2_000)))
    await intake.receive_many([(AM, big, "big")])
    await intake.receive_many([(AM, delivery(alert("Q", "new-0")), "first")])  # the group's run
    arrivals = [
        (AM, delivery(alert("Q", f"new-{n}"), alert("Q", "old-7")), f"n{n}") for n in (1, 2)
    ]
    async with db.transaction() as session:
        results = await intake.fold_in(session, arrivals)
        read = (
            await session.exec(  # type: ignore[call-overload]
                sa.text(
                    "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                    "FROM pg_stat_xact_user_tables WHERE relname = 'alert'"
                )
            )
        ).scalar_one()
    assert [r.alerts for r in results] == [2, 2]
    assert read < 50, f"{read} alert rows read to fold 4 alerts into an incident of 2,001"
    async with db.transaction(read_only=True) as session:
        counts = dict((await session.exec(select(Alert.fingerprint, Alert.count))).all())
    assert len(counts) == 2_003
    assert counts["old-7"] == 3  # seen in the big delivery and in each of the two
    assert counts["new-1"] == counts["new-2"] == 1


class _Stuck:
    """A sink whose writes never finish: the batcher's task is the only way out."""

    async def receive_many(self, deliveries: object) -> list[IntakeResult]:
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    async def receive(self, endpoint: Endpoint, d: Delivery, *, delivery_key: str) -> IntakeResult:
        raise AssertionError("not reached")


async def test_requests_still_waiting_when_the_batcher_stops_are_refused_not_left_hanging() -> None:
    batcher = Batcher(_Stuck(), max_deliveries=1, timeout=60)
    waiting = [
        asyncio.ensure_future(
            batcher.receive(AM, delivery(alert("A", f"fp{n}")), delivery_key=f"k{n}")
        )
        for n in range(3)
    ]
    await asyncio.sleep(0.05)  # one in the stuck batch, two queued behind it
    assert batcher._task is not None
    batcher._task.cancel()
    done, pending = await asyncio.wait(waiting, timeout=2)
    assert not pending, "a request was left waiting for a batcher that had stopped"
    assert all(isinstance(task.exception(), StorageUnavailable) for task in done)
