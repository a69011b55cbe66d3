"""The intake journal and its folder, on SQLite and Postgres: a storm is answered once its
bodies are journaled, the fold follows in arrival order, a crash or a second replica folds
nothing twice, and a bad entry fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlmodel import col, func, select

from bot.clock import FixedClock
from bot.intake.accept import Acceptor
from bot.intake.alerts.decode import decode_body
from bot.intake.alerts.model import Delivery
from bot.intake.alerts.registry import get_parser
from bot.intake.batch import Batcher
from bot.intake.fold import Endpoint, IntakeResult, delivery_key
from bot.intake.folder import Folder
from bot.intake.journal import MAX_ATTEMPTS, Journal
from bot.store.db import Database
from bot.store.models import Alert, Incident, WebhookDelivery
from tests.intake.test_batch import _Poisoned, make

AM = Endpoint(name="alertmanager", source="alertmanager", group_by=("alertname",))


def body(name: str, fp: str, *, status: str = "firing") -> bytes:
    """A real Alertmanager webhook body (version 4) with one alert."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}',
            "status": status,
            "receiver": "warroom",
            "groupLabels": {"alertname": name},
            "commonLabels": {"alertname": name},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": name, "instance": fp},
                    "annotations": {"summary": f"{name} on {fp}"},
                    "startsAt": "2026-11-26T09:00:00Z",
                    "endsAt": "2026-11-26T09:30:00Z"
                    if status == "resolved"
                    else "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph",
                    "fingerprint": fp,
                }
            ],
        }
    ).encode()


def parsed(raw: bytes) -> tuple[Delivery, str]:
    """The delivery as the webhook handler hands it on: parsed, with its body."""
    return replace(get_parser("alertmanager")(decode_body(raw)), body=raw), delivery_key(raw)


@contextlib.asynccontextmanager
async def accepting(folder: Folder) -> AsyncIterator[Acceptor]:
    """The server's receiver over ``folder``, its rounds running on this loop."""
    stop = asyncio.Event()
    rounds = asyncio.create_task(folder.run(stop))
    try:
        yield Acceptor(Batcher(folder.journal), folder)
    finally:
        stop.set()
        await rounds


async def count(db: Database, model: type) -> int:
    async with db.transaction(read_only=True) as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


def folder_for(db: Database, clock: FixedClock, **options: object) -> Folder:
    return Folder(Journal(db, clock), make(db, clock), lambda name, source: AM, **options)  # type: ignore[arg-type]


async def test_a_storm_is_answered_from_the_journal_and_folded_behind_it(
    db: Database, clock: FixedClock
) -> None:
    folder = folder_for(db, clock)
    arrivals = [parsed(body("DiskFull", f"fp-{n}")) for n in range(40)]
    async with accepting(folder) as acceptor:
        results = await asyncio.gather(
            *(acceptor.receive(AM, d, delivery_key=k) for d, k in arrivals)
        )
        assert all(isinstance(r, IntakeResult) for r in results)
        assert any(r.queued for r in results)  # 40 at once: most are answered from the journal
        async with asyncio.timeout(30):
            while folder.pending():  # noqa: ASYNC110 (the folder has no event for "all folded")
                await asyncio.sleep(0.05)
    assert await count(db, Incident) == 1
    assert await count(db, Alert) == 40
    assert await count(db, WebhookDelivery) == 40
    assert (await folder.journal.backlog())[0] == 0
    await folder.journal.close()


async def test_a_lone_delivery_is_answered_with_what_its_fold_did(
    db: Database, clock: FixedClock
) -> None:
    folder = folder_for(db, clock)
    delivery, key = parsed(body("DiskFull", "fp-1"))
    async with accepting(folder) as acceptor:
        result = await acceptor.receive(AM, delivery, delivery_key=key)
    assert not result.queued
    assert result.opened == ["INC-0001"]
    await folder.journal.close()


async def test_entries_left_by_a_crash_are_folded_by_the_next_start_from_their_bodies(
    db: Database, clock: FixedClock
) -> None:
    journal = Journal(db, clock)
    arrivals = [parsed(body("DiskFull", f"fp-{n}")) for n in range(5)]
    await journal.receive_many([(AM, d, k) for d, k in arrivals])
    await journal.close()  # the process dies: nothing was folded
    assert await count(db, Alert) == 0
    restarted = folder_for(db, clock)  # no parsed deliveries in memory: bodies re-parsed
    assert await restarted.drain() == 5
    assert await count(db, Alert) == 5
    assert await count(db, Incident) == 1
    assert (await restarted.journal.backlog())[0] == 0
    await restarted.journal.close()


async def test_a_delivery_folded_before_a_crash_is_not_folded_twice(
    db: Database, clock: FixedClock
) -> None:
    """SQLite deletes an entry after its fold commits: a crash in between leaves it, and
    its second fold is recognised as the same delivery."""
    delivery, key = parsed(body("DiskFull", "fp-1"))
    await make(db, clock).receive(AM, delivery, delivery_key=key)
    folder = folder_for(db, clock)
    await folder.journal.receive_many([(AM, delivery, key)])
    assert await folder.drain() == 1
    assert await count(db, Alert) == 1
    assert await count(db, WebhookDelivery) == 1
    assert (await folder.journal.backlog())[0] == 0
    await folder.journal.close()


async def test_firing_then_resolved_are_folded_in_the_order_they_were_answered(
    db: Database, clock: FixedClock
) -> None:
    journal = Journal(db, clock)
    firing, resolved = (
        parsed(body("DiskFull", "fp-1")),
        parsed(body("DiskFull", "fp-1", status="resolved")),
    )
    await journal.receive_many([(AM, *firing)])
    await journal.receive_many([(AM, *resolved)])
    folder = folder_for(db, clock, deliveries=1)  # one entry a round: order is the rounds'
    assert await folder.drain() == 2
    async with db.transaction(read_only=True) as session:
        (row,) = (await session.exec(select(Alert))).all()
    assert row.status == "resolved"
    await journal.close()
    await folder.journal.close()


async def test_the_same_delivery_journaled_twice_is_one_entry(
    db: Database, clock: FixedClock
) -> None:
    journal = Journal(db, clock)
    delivery, key = parsed(body("DiskFull", "fp-1"))
    await journal.receive_many([(AM, delivery, key), (AM, delivery, key)])
    await journal.receive_many([(AM, delivery, key)])
    assert (await journal.backlog())[0] == 1
    await journal.close()


async def test_entries_read_back_exactly_as_appended_and_in_order(
    db: Database, clock: FixedClock
) -> None:
    journal = Journal(db, clock)
    raws = [
        body("Plattenplatz voll", "fp-ü"),  # non-ASCII text, escaped by json.dumps
        '{"alerts": [], "note": "Größe \\\\ \\" 💥"}'.encode(),  # raw UTF-8
        body("DiskFull", "fp-2"),
    ]
    keys = ['id:tab\there "quoted" ünïcode', "id:💥", delivery_key(raws[2])]
    arrivals = [
        (AM, replace(parsed(raws[0])[0], body=raw), key)
        for raw, key in zip(raws, keys, strict=True)
    ]
    await journal.receive_many(arrivals)
    async with db.transaction() as session:
        entries = await journal.oldest(session, deliveries=10, alerts=100)
    assert [(e.delivery_key, e.body) for e in entries] == list(zip(keys, raws, strict=True))
    assert [e.alerts for e in entries] == [1, 1, 1]
    assert [e.endpoint for e in entries] == ["alertmanager"] * 3
    assert entries == sorted(entries, key=lambda e: e.id)
    await journal.close()


async def test_two_replicas_folding_at_once_store_each_alert_once(
    database_url: str, clock: FixedClock
) -> None:
    first, second = Database(database_url), Database(database_url)
    try:
        journal = Journal(first, clock)
        arrivals = [parsed(body(f"Group{n % 3}", f"fp-{n}")) for n in range(60)]
        for start in range(0, 60, 10):
            await journal.receive_many([(AM, d, k) for d, k in arrivals[start : start + 10]])
        a, b = folder_for(first, clock, deliveries=7), folder_for(second, clock, deliveries=7)
        await asyncio.gather(a.drain(), b.drain())
        await asyncio.gather(a.drain(), b.drain())  # a round that found the lock taken
        assert await count(first, Alert) == 60
        assert await count(first, Incident) == 3
        assert (await journal.backlog())[0] == 0
        for folder in (a, b):
            await folder.journal.close()
        await journal.close()
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_bad_entry_fails_alone_and_is_left_after_its_attempts(
    db: Database, clock: FixedClock
) -> None:
    journal = Journal(db, clock)
    good, poison = parsed(body("DiskFull", "fp-1")), parsed(body("Poison", "fp-2"))
    await journal.receive_many([(AM, *good), (AM, *poison)])
    folder = Folder(
        journal, make(db, clock, classifier=_Poisoned_scheme()), lambda name, source: AM
    )
    for _ in range(MAX_ATTEMPTS + 2):
        await folder.fold_round()
    assert await count(db, Alert) == 1  # the good one, folded at the first round
    pending, _, stuck = await journal.backlog()
    assert (pending, stuck) == (0, 1)
    async with db.transaction(read_only=True) as session:
        names = (await session.exec(select(Incident.title).order_by(col(Incident.id)))).all()
    assert len(names) == 1
    await journal.close()


def _Poisoned_scheme() -> _Poisoned:
    from bot.incidents.severity import P1_P4
    from bot.intake.classify import DEFAULT_RULES

    return _Poisoned(P1_P4, DEFAULT_RULES)


async def test_in_a_storm_the_fold_rests_longer_after_rounds_that_opened_nothing(
    db: Database, clock: FixedClock
) -> None:
    """While senders wait, a round that opened an incident rests as long as it took and one
    that only added alerts to open incidents three times as long; with nobody waiting, the
    fold does not rest."""
    storm = True
    folder = folder_for(db, clock, busy=lambda: storm)
    journal = folder.journal
    for raw in (body("DiskFull", "fp-1"), body("DiskFull", "fp-2")):
        delivery, key = parsed(raw)
        await journal.receive_many([(AM, delivery, key)])
        assert await folder.fold_round() == 1
        if raw == body("DiskFull", "fp-1"):
            assert await count(db, Incident) == 1  # this round opened it
            assert folder.rest(0.2) == 0.2
    assert await count(db, Incident) == 1  # the second round only added an alert
    assert folder.rest(0.2) == pytest.approx(0.6)
    storm = False
    assert folder.rest(0.2) == 0.0
    await journal.close()
