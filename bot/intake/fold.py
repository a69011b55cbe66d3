"""Alert intake: a parsed webhook delivery folded into incidents, in one transaction.

Rules (each is a test):

- A sender's exact retry (same endpoint and delivery id: PagerDuty's
  ``X-Webhook-Id``, else the body's digest) counts once and changes nothing.
- Each alert belongs to a group: the sender's own (Alertmanager and Grafana
  ``groupKey``), else the configured ``group_by`` labels. A group's first
  firing alert opens one incident; the group row is locked while a delivery is
  processed, so concurrent deliveries for a new group still open one.
- A firing alert already on an open incident updates it (count, last seen) and
  adds nothing else; a new alert of the group is a timeline event.
- A resolved alert is a timeline event. When all of an incident's alerts are
  resolved, the incident follows ``when_all_resolved`` (default: ``monitoring``,
  with a prompt to resolve).
- An alert firing again within ``reopen_window`` of its incident's resolution
  reopens that incident; later, it opens a new one. A firing alert on an
  incident in ``monitoring`` puts it back to ``investigating``.
- An incident's severity is the highest its alerts were classified at, unless a
  person set it: automation never overrides a person (the timeline keeps both).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.errors import IncidentNotFound
from bot.incidents.lifecycle import Change, Incidents
from bot.intake.alerts.model import (
    GROUP_KEY_MAX,
    AlertStatus,
    Delivery,
    NormalizedAlert,
    fit_key,
)
from bot.intake.classify import Classification, Classifier
from bot.store.db import Database, insert_ignore, insert_or_lock
from bot.store.models import Alert, AlertGroup, Incident, SeveritySource, Status, WebhookDelivery

log = logging.getLogger(__name__)

AllResolvedPolicy = Literal["monitoring", "resolve", "nothing"]

#: More alert changes than this in one delivery become one timeline entry per incident.
SUMMARISE_OVER = 5

#: Alerts a batch folds between two turns it gives the event loop.
YIELD_EVERY = 100

#: Where senders put an alert's service: Prometheus conventions, then OpenTelemetry's.
SERVICE_LABELS = ("service", "service_name", "service.name", "job")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What intake needs to know of a webhook endpoint (no secrets)."""

    name: str
    source: str
    service: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ("alertname", "service")


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    reopen_window: timedelta = timedelta(hours=1)
    group_window: timedelta = timedelta(hours=24)
    when_all_resolved: AllResolvedPolicy = "monitoring"
    #: Labels that name an alert's service, in order: the first one present (not empty) wins.
    service_labels: tuple[str, ...] = SERVICE_LABELS


@dataclass
class IntakeResult:
    """What one delivery did; ``decisions`` explains it line by line (``warroom replay``)."""

    duplicate: bool = False
    ping: bool = False
    #: Stored in the intake journal, to be folded soon (a storm's answer: 202).
    queued: bool = False
    alerts: int = 0
    ignored: int = 0
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)

    @property
    def incidents(self) -> list[str]:
        return sorted(set(self.opened) | set(self.updated))


class _DryRun(Exception):
    """Raised at the end of a dry run so that its transaction rolls back."""


class Intake:
    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        classifier: Classifier,
        *,
        clock: Clock,
        policy: IntakePolicy = IntakePolicy(),
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.classifier = classifier
        self.clock = clock
        self.policy = policy

    async def receive(
        self,
        endpoint: Endpoint,
        delivery: Delivery,
        *,
        delivery_key: str,
        dry_run: bool = False,
    ) -> IntakeResult:
        """Store ``delivery``; return only once it is committed (or rolled back if ``dry_run``)."""
        result = IntakeResult()
        try:
            async with self.db.transaction() as session:
                if not await self._first_delivery(session, endpoint, delivery_key, delivery):
                    result.duplicate = True
                    result.decisions.append(f"delivery {delivery_key[:16]} seen before: ignored")
                    return result
                if delivery.is_ping:
                    result.ping = True
                    result.decisions.append("ping: nothing to do")
                else:
                    await _Run(self, session, endpoint, delivery, result).run()
                if dry_run:
                    raise _DryRun
        except _DryRun:
            result.decisions.append("dry run: nothing was written")
        return result

    async def receive_many(
        self, deliveries: Sequence[tuple[Endpoint, Delivery, str]]
    ) -> list[IntakeResult]:
        """Store many (endpoint, delivery, delivery key) in ONE transaction, each as
        :meth:`receive` would one after the other; return once it is committed.

        The common case (firing alerts joining open incidents) is folded with a few
        set-based statements for all of them; a delivery that opens, reopens, resolves,
        raises severity, acknowledges or follows one of those on its group takes
        :meth:`receive`'s path, inside the same transaction. Any error fails the whole call
        (nothing is written): the caller retries the deliveries one by one.
        """
        async with self.db.transaction() as session:
            return await self.fold_in(session, deliveries)

    async def fold_in(
        self, session: AsyncSession, deliveries: Sequence[tuple[Endpoint, Delivery, str]]
    ) -> list[IntakeResult]:
        """:meth:`receive_many` inside the caller's transaction (the journal's folder)."""
        return await _Batch(self, session, deliveries).run()

    async def _first_delivery(
        self, session: AsyncSession, endpoint: Endpoint, key: str, delivery: Delivery
    ) -> bool:
        row = {
            "endpoint": endpoint.name,
            "delivery_key": key[:200],
            "received_at": self.clock.now(),
            "alerts": len(delivery.alerts),
        }
        return await insert_ignore(session, WebhookDelivery, row, ("endpoint", "delivery_key"))


@dataclass(slots=True)
class _Item:
    """One delivery of a batch."""

    endpoint: Endpoint
    delivery: Delivery
    key: str
    result: IntakeResult = field(default_factory=IntakeResult)
    #: Its alerts with the endpoint's defaults, each with its group row and whether the sender
    #: grouped it (filled once the groups are locked).
    alerts: list[tuple[NormalizedAlert, AlertGroup, bool]] = field(default_factory=list)
    groups: dict[str, AlertGroup] = field(default_factory=dict)  # group key → row


@dataclass(slots=True)
class _Known:
    """An alert row of a locked incident, as the batch will leave it."""

    values: dict[str, object]
    existing: bool


_ALERT_TABLE: sa.Table = Alert.__table__  # type: ignore[attr-defined]
#: (incident, endpoint) terms of one statement on SQLite (its expressions nest one per term;
#: SQLite allows 1,000 levels).
_OWNERS_PER_STATEMENT = 200
_PG_ROWS_OF = sa.text(
    "SELECT a.incident_id, a.endpoint, a.fingerprint, a.status, a.count FROM alert AS a "
    "JOIN unnest(CAST(:ids AS integer[]), CAST(:endpoints AS text[]), "
    "CAST(:fingerprints AS text[])) AS w(i, e, f) "
    "ON a.incident_id = w.i AND a.endpoint = w.e AND a.fingerprint = w.f"
)
_DELIVERY_TABLE: sa.Table = WebhookDelivery.__table__  # type: ignore[attr-defined]
_GROUP_TABLE: sa.Table = AlertGroup.__table__  # type: ignore[attr-defined]
_GROUP_SEEN = (
    sa.update(_GROUP_TABLE)
    .where(_GROUP_TABLE.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(last_seen=sa.bindparam("now"))
)
_ALERT_UPDATED = (
    "status",
    "labels",
    "annotations",
    "summary",
    "description",
    "links",
    "values",
    "severity_hint",
    "starts_at",
    "ends_at",
    "last_seen",
    "raw",
    "group_key",
    "count",
)


class _Batch:
    """Many deliveries' processing inside one transaction, set-based where it can be.

    Statements for any number of deliveries: the delivery keys (one INSERT … ON CONFLICT DO
    NOTHING), the groups (one upsert that locks them, in key order so two replicas queue
    instead of deadlocking), their incidents with the batch's alert rows (one SELECT … FOR
    UPDATE, in id order), the alert rows (one upsert, executemany), the timeline events (one
    INSERT), the card refreshes (one SELECT, one INSERT) and the changed incident and group
    rows (flushed as executemany UPDATEs). Deliveries that need more than that (see
    :meth:`_fits`) then run :class:`_Run`, in arrival order, on the same locked rows.
    """

    def __init__(
        self,
        intake: Intake,
        session: AsyncSession,
        deliveries: Sequence[tuple[Endpoint, Delivery, str]],
    ) -> None:
        self.intake = intake
        self.session = session
        self.items = [_Item(e, d, k) for e, d, k in deliveries]
        self.now = intake.clock.now()
        self.pg = _dialect_of(session) == "postgresql"
        self.incidents: dict[int, Incident] = {}
        self.known: dict[tuple[int, str, str], _Known] = {}  # (incident, endpoint, fp) → row
        self.entries: list[tuple[Incident, str, Sequence[Change]]] = []
        self.seen: dict[int, AlertGroup] = {}  # the groups folded into: last seen now

    async def run(self) -> list[IntakeResult]:
        live = await self._first_deliveries()
        if live:
            await self._lock_groups(live)
            await self._lock_incidents(live)
            slow: list[_Item] = []
            dirty_groups: set[int] = set()
            dirty_incidents: set[int] = set()
            since_yield = 0
            for item in live:
                since_yield += len(item.alerts)
                if since_yield >= YIELD_EVERY:  # a storm's batch is not one long CPU chunk:
                    since_yield = 0  # the loop serves Slack's acks in between
                    await asyncio.sleep(0)
                if self._fits(item, dirty_groups, dirty_incidents):
                    self._fold(item)
                    continue
                slow.append(item)
                for _, group, _ in item.alerts:
                    dirty_groups.add(_gid(group))
                    if group.incident_id is not None:
                        dirty_incidents.add(group.incident_id)
            await self._write()
            for item in slow:
                run = _Run(
                    self.intake,
                    self.session,
                    item.endpoint,
                    item.delivery,
                    item.result,
                    groups=item.groups,
                )
                await run.run()
        return [item.result for item in self.items]

    async def _first_deliveries(self) -> list[_Item]:
        """Record every delivery key; the deliveries seen before (or twice here) are done."""
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for item in self.items:
            ident = (item.endpoint.name, item.key[:200])
            if ident not in rows:
                rows[ident] = {
                    "endpoint": ident[0],
                    "delivery_key": ident[1],
                    "received_at": self.now,
                    "alerts": len(item.delivery.alerts),
                }
        statement = _statements(self.pg).deliveries
        found = await self.session.exec(statement, params=list(rows.values()))
        inserted = {(e, k) for e, k in found.all()}
        live: list[_Item] = []
        for item in self.items:
            ident = (item.endpoint.name, item.key[:200])
            if ident not in inserted:
                item.result.duplicate = True
                item.result.decisions.append(f"delivery {item.key[:16]} seen before: ignored")
                continue
            inserted.discard(ident)  # a second copy in this batch is a retry too
            if item.delivery.is_ping:
                item.result.ping = True
                item.result.decisions.append("ping: nothing to do")
                continue
            live.append(item)
        return live

    async def _lock_groups(self, live: list[_Item]) -> None:
        """Insert the missing groups and lock them all, in one statement, in key order."""
        labels = self.intake.policy.service_labels
        keys: dict[tuple[str, str], str] = {}
        pending: list[tuple[_Item, NormalizedAlert, tuple[str, str], bool]] = []
        for item in live:
            for raw in item.delivery.alerts:
                alert = with_defaults(item.endpoint, raw, labels)
                key, sender_groups = group_of(item.endpoint, item.delivery, alert)
                ident = (item.endpoint.name, group_hash(key))
                keys.setdefault(ident, key)
                pending.append((item, alert, ident, sender_groups))
        if not keys:
            return  # deliveries without alerts
        rows = [
            {
                "endpoint": endpoint,
                "group_hash": hashed,
                "group_key": keys[(endpoint, hashed)],
                "created_at": self.now,
                "last_seen": self.now,
            }
            for endpoint, hashed in sorted(keys)
        ]
        options = {"populate_existing": True}
        found = await self.session.exec(
            _statements(self.pg).groups, params=rows, execution_options=options
        )
        groups = {(g.endpoint, g.group_hash): g for g in found.scalars().all()}
        for item, alert, ident, sender_groups in pending:
            group = groups[ident]
            item.alerts.append((alert, group, sender_groups))
            item.groups[keys[ident]] = group

    async def _lock_incidents(self, live: list[_Item]) -> None:
        """Lock the groups' incidents, in id order, then read their rows of the batch's alerts.

        The rows are looked up by their identity (incident, endpoint, fingerprint: the unique
        index), so a round costs the same whether an incident has ten alerts or ten thousand.
        (Joined on the incident and a list of fingerprints, Postgres read every alert row of
        each incident: a storm's fold slowed down as its incidents grew.) Only intake writes
        alert rows, under the groups' locks, which this batch holds already.
        """
        ids = sorted({g.incident_id for i in live for _, g, _ in i.alerts if g.incident_id})
        if not ids:
            return
        query = (
            sa.select(Incident)
            .where(col(Incident.id).in_(ids))
            .order_by(col(Incident.id))
            # FOR NO KEY UPDATE on Postgres: it serialises intake and the lifecycle as FOR
            # UPDATE would, but leaves the rows' foreign-key checks free, so the delivery
            # worker's transcript and outbox rows of these incidents do not queue behind it.
            .with_for_update(of=Incident, key_share=True)
        )
        options = {"populate_existing": True}
        found = await self.session.exec(query, execution_options=options)  # type: ignore[call-overload]
        for incident in found.scalars().all():
            self.incidents[_id(incident)] = incident
        wanted = sorted(
            {
                (g.incident_id, item.endpoint.name, a.fingerprint)
                for item in live
                for a, g, _ in item.alerts
                if g.incident_id
            }
        )
        for incident_id, endpoint, fingerprint, status, count in await self._rows_of(wanted):
            values = {"status": status, "count": count}
            self.known[(incident_id, endpoint, fingerprint)] = _Known(values, True)

    async def _rows_of(self, wanted: list[tuple[int, str, str]]) -> list[Any]:
        """The stored rows of these alert identities: (incident, endpoint, fingerprint,
        status, count), each found through the unique index."""
        if not wanted:
            return []
        if self.pg:  # one index lookup per identity (a row-value IN list plans for ~50 ms)
            ids, endpoints, fingerprints = (list(column) for column in zip(*wanted, strict=True))
            params = {"ids": ids, "endpoints": endpoints, "fingerprints": fingerprints}
            found = await self.session.exec(_PG_ROWS_OF, params=params)  # type: ignore[call-overload]
            return list(found.all())
        # SQLite scans the whole table for a row-value IN list, but searches the unique index
        # once per term of an OR: one term per (incident, endpoint), its fingerprints IN.
        owners: dict[tuple[int, str], list[str]] = {}
        for incident_id, endpoint, fingerprint in wanted:
            owners.setdefault((incident_id, endpoint), []).append(fingerprint)
        c = _ALERT_TABLE.c  # columns, not rows: the ORM's copies are left to _Run
        terms = [
            (c.incident_id == incident_id) & (c.endpoint == endpoint) & c.fingerprint.in_(fps)
            for (incident_id, endpoint), fps in owners.items()
        ]
        rows: list[Any] = []
        for start in range(0, len(terms), _OWNERS_PER_STATEMENT):
            found = await self.session.exec(  # type: ignore[call-overload]
                sa.select(c.incident_id, c.endpoint, c.fingerprint, c.status, c.count).where(
                    sa.or_(*terms[start : start + _OWNERS_PER_STATEMENT])
                )
            )
            rows += found.all()
        return rows

    def _fits(self, item: _Item, dirty_groups: set[int], dirty_incidents: set[int]) -> bool:
        """Whether every alert of ``item`` is a firing alert joining an open incident that
        stays as it is (not in monitoring, no severity raise), on a group not left to _Run."""
        if asks_acknowledge(item.delivery):
            return False
        scheme = self.intake.incidents.scheme
        window = self.intake.policy.group_window
        for alert, group, sender_groups in item.alerts:
            if alert.status is not AlertStatus.FIRING or _gid(group) in dirty_groups:
                return False
            incident = self.incidents.get(group.incident_id or 0)
            if incident is None or _id(incident) in dirty_incidents:
                return False
            if not incident.state.is_open or incident.state is Status.MONITORING:
                return False
            seen = self.now if _gid(group) in self.seen else group.last_seen
            if not sender_groups and self.now - seen > window:
                return False
            rank = scheme.rank(incident.severity)
            if rank > 0 and scheme.rank(self.intake.classifier.classify(alert).severity) < rank:
                return False  # a raise: the lifecycle records it (nothing is above rank 0)
        return True

    def _fold(self, item: _Item) -> None:
        """What :class:`_Run` would do for a delivery that :meth:`_fits`, in memory."""
        result = item.result
        endpoint = item.endpoint.name
        changes: dict[int, list[Change]] = {}
        for alert, group, _ in item.alerts:
            incident = self.incidents[group.incident_id or 0]
            incident_id = _id(incident)
            self.seen[_gid(group)] = group
            result.alerts += 1
            if incident.key not in result.updated:
                result.updated.append(incident.key)
            values: dict[str, object] = {
                "status": alert.status.value,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "summary": alert.summary,
                "description": alert.description,
                "links": alert.links,
                "values": alert.values,
                "severity_hint": alert.severity_hint,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "last_seen": self.now,
                "raw": alert.raw,
                "group_key": fit_key(group.group_key, GROUP_KEY_MAX),
            }
            ident = (incident_id, endpoint, alert.fingerprint)
            known = self.known.get(ident)
            data = {
                "fingerprint": alert.fingerprint,
                "status": alert.status.value,
                "source": alert.source,
                "endpoint": endpoint,
                "links": alert.links,
            }
            if known is None:
                values.update(
                    incident_id=incident_id,
                    source=alert.source,
                    endpoint=endpoint,
                    fingerprint=alert.fingerprint,
                    first_seen=self.now,
                    count=1,
                )
                self.known[ident] = _Known(values, False)
                text = f"alert firing: {alert.summary or alert.name}"
                changes.setdefault(incident_id, []).append(Change("alert", text, data))
                result.decisions.append(f"{alert.name}: new alert on {incident.key}")
                continue
            previous = known.values["status"]
            count = int(str(known.values["count"])) + 1
            known.values.update(values, count=count)
            if previous != alert.status.value:
                text = f"alert firing again: {alert.summary or alert.name}"
                changes.setdefault(incident_id, []).append(Change("alert", text, data))
                result.decisions.append(f"{alert.name}: firing again on {incident.key}")
            else:
                result.decisions.append(
                    f"{alert.name}: repeat on {incident.key} (seen {count} times)"
                )
        for incident_id, found in changes.items():
            self.entries.append((self.incidents[incident_id], endpoint, summarised(found)))

    async def _write(self) -> None:
        """The folded deliveries' alert rows, timeline events and card refreshes."""
        new = [k.values for k in self.known.values() if not k.existing]
        updated = [
            {"b_incident": incident_id, "b_endpoint": endpoint, "b_fingerprint": fp, **k.values}
            for (incident_id, endpoint, fp), k in self.known.items()
            if k.existing and "raw" in k.values  # only the rows this batch folded into
        ]
        if new:
            await self.session.exec(sa.insert(_ALERT_TABLE), params=new)
        if updated:
            await self.session.exec(_ALERT_UPDATE, params=updated)
        if self.seen:
            # Written here, not flushed by the ORM: one statement for all (the rows held for
            # _Run are told the value as stored).
            ids = sorted(self.seen)
            await self.session.exec(_GROUP_SEEN, params={"now": self.now, "ids": ids})
            for group in self.seen.values():
                set_committed_value(group, "last_seen", self.now)
        if self.entries:
            await self.intake.incidents.record_many(self.session, self.entries)


@dataclass(frozen=True)
class _Statements:
    deliveries: sa.Insert
    groups: sa.Insert


@functools.cache
def _statements(pg: bool) -> _Statements:
    """The batch's statements, built once per dialect (their parameters are given when run,
    as executemany: SQLAlchemy sends the rows in one statement and caches its compiled form).
    """
    dialect: Any = postgresql if pg else sqlite
    deliveries = dialect.insert(_DELIVERY_TABLE)
    c = _DELIVERY_TABLE.c
    groups = dialect.insert(AlertGroup)
    return _Statements(
        deliveries=deliveries.on_conflict_do_nothing(
            index_elements=["endpoint", "delivery_key"]
        ).returning(c.endpoint, c.delivery_key),
        # On conflict the row is "updated" to itself: locked, and returned as it was. The rows
        # come sorted: two replicas lock their common groups in the same order.
        groups=groups.on_conflict_do_update(
            index_elements=["endpoint", "group_hash"], set_={"endpoint": groups.excluded.endpoint}
        ).returning(AlertGroup),
    )


#: An alert row's new state, by its identity (executemany: one parameter set per row).
_ALERT_UPDATE = (
    sa.update(_ALERT_TABLE)
    .where(
        _ALERT_TABLE.c.incident_id == sa.bindparam("b_incident"),
        _ALERT_TABLE.c.endpoint == sa.bindparam("b_endpoint"),
        _ALERT_TABLE.c.fingerprint == sa.bindparam("b_fingerprint"),
    )
    .values({name: sa.bindparam(name) for name in _ALERT_UPDATED})
)


def _dialect_of(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind else "sqlite"


def _gid(group: AlertGroup) -> int:
    assert group.id is not None
    return group.id


class _Run:
    """One delivery's processing inside its transaction."""

    def __init__(
        self,
        intake: Intake,
        session: AsyncSession,
        endpoint: Endpoint,
        delivery: Delivery,
        result: IntakeResult,
        *,
        groups: dict[str, AlertGroup] | None = None,
    ) -> None:
        self.intake = intake
        self.session = session
        self.endpoint = endpoint
        self.delivery = delivery
        self.result = result
        self.now = intake.clock.now()
        self.actor = endpoint.name
        self.touched: dict[int, Incident] = {}
        self.openers: set[str] = set()  # fingerprints of the alerts that opened an incident
        # One delivery is processed as a batch: each group locked once, each incident's alert
        # rows read once (with its lock), new rows inserted together, its timeline events and
        # severity written once at the end.
        self.groups: dict[str, AlertGroup] = dict(groups or {})  # locked already, by key
        self.known: dict[int, dict[str, Alert]] = {}  # incident id → its rows of these alerts
        self.new_rows: list[Alert] = []  # the rows of ``known`` not stored yet
        self.changes: dict[int, list[Change]] = {}
        self.verdicts: dict[int, tuple[Classification, str]] = {}

    async def run(self) -> None:
        for alert in self.delivery.alerts:
            await self._one(self._with_defaults(alert))
        if self.new_rows:  # in one statement (the ORM would send SQLite one per row)
            rows = [row.model_dump(exclude={"id"}) for row in self.new_rows]
            await self.session.exec(sa.insert(Alert), params=rows)
        for incident_id, incident in list(self.touched.items()):
            await self._write_changes(incident, self.changes.pop(incident_id, []))
            await self._apply_verdict(incident)
        for incident in list(self.touched.values()):
            await self._after(incident)

    def _with_defaults(self, alert: NormalizedAlert) -> NormalizedAlert:
        return with_defaults(self.endpoint, alert, self.intake.policy.service_labels)

    async def _one(self, alert: NormalizedAlert) -> None:
        group_key, sender_groups = group_of(self.endpoint, self.delivery, alert)
        group = await self._lock_group(group_key)
        incident = await self._incident_of(group, alert, sender_groups)
        if incident is None:
            self.result.ignored += 1
            self.result.decisions.append(
                f"{alert.name}: resolved, but no incident is open for its group: ignored"
            )
            return
        group.incident_id = incident.id
        group.last_seen = self.now
        self.session.add(group)
        self.result.alerts += 1
        await self._store_alert(incident, alert, group_key)
        await self._classify(incident, alert)
        await self._acknowledge_if_asked(incident)
        self.touched[_id(incident)] = incident

    async def _lock_group(self, group_key: str) -> AlertGroup:
        if group_key in self.groups:
            return self.groups[group_key]
        self.groups[group_key] = await self._lock_group_row(group_key)
        return self.groups[group_key]

    async def _lock_group_row(self, group_key: str) -> AlertGroup:
        row = {
            "endpoint": self.endpoint.name,
            "group_hash": group_hash(group_key),
            "group_key": group_key,
            "created_at": self.now,
            "last_seen": self.now,
        }
        return await insert_or_lock(self.session, AlertGroup, row, ("endpoint", "group_hash"))

    async def _incident_of(
        self, group: AlertGroup, alert: NormalizedAlert, sender_groups: bool
    ) -> Incident | None:
        firing = alert.status is AlertStatus.FIRING
        policy = self.intake.policy
        incidents = self.intake.incidents
        if group.incident_id is not None:
            incident = self.touched.get(group.incident_id) or await self._lock_incident(
                group.incident_id
            )
            if incident.state.is_open:
                stale = not sender_groups and self.now - group.last_seen > policy.group_window
                if not (stale and firing):
                    return incident
                self.result.decisions.append(
                    f"{alert.name}: group silent for over {policy.group_window}; "
                    f"{incident.key} left alone"
                )
            elif not firing:
                return incident  # a late resolve for a closed incident: recorded, no reopen
            elif incident.resolved_at and self.now - incident.resolved_at <= policy.reopen_window:
                await incidents.reopen(
                    incident,
                    actor=self.actor,
                    reason=f"{alert.name} fired again within {_human(policy.reopen_window)}",
                    session=self.session,
                )
                self.result.decisions.append(f"{alert.name}: reopens {incident.key}")
                self._updated(incident)
                return incident
        if not firing:
            return None
        return await self._open(alert)

    async def _open(self, alert: NormalizedAlert) -> Incident:
        verdict = self.intake.classifier.classify(alert)
        title = alert.summary or alert.name or "Alert"
        labels = self.intake.policy.service_labels
        service = service_of(alert.labels, labels) or self.endpoint.service
        incident = await self.intake.incidents.declare(
            title=title[:200],
            actor=self.actor,
            severity=verdict.severity,
            severity_reason=verdict.reason,
            severity_source=SeveritySource.RULE,
            service=service[:100] if service else service,  # the column's width
            impact=alert.annotations.get("impact", ""),
            summary=alert.description,
            detected_at=alert.starts_at or self.now,
            acknowledge=False,
            session=self.session,
        )
        self.result.opened.append(incident.key)
        self.openers.add(alert.fingerprint)
        self.result.decisions.append(
            f"{alert.name}: opens {incident.key} ({verdict.severity}: {verdict.reason})"
        )
        return incident

    async def _lock_incident(self, incident_id: int) -> Incident:
        """Lock the incident and read its rows of the delivery's alerts, in one statement.

        Only intake writes alert rows, under their group's lock, which this delivery holds
        already: a row cannot change between this statement's snapshot and the lock.
        """
        wanted = {a.fingerprint for a in self.delivery.alerts}
        query = (
            select(Incident, Alert)
            .outerjoin(
                Alert,
                (col(Alert.incident_id) == col(Incident.id))
                & (col(Alert.endpoint) == self.endpoint.name)
                & col(Alert.fingerprint).in_(wanted),
            )
            .where(col(Incident.id) == incident_id)
            .with_for_update(of=Incident)
        )
        found = (await self.session.exec(query)).all()
        if not found:
            raise IncidentNotFound(f"#{incident_id}")
        self.known[incident_id] = {row.fingerprint: row for _, row in found if row is not None}
        return found[0][0]

    def _change(self, incident: Incident, change: Change) -> None:
        self.changes.setdefault(_id(incident), []).append(change)

    async def _write_changes(self, incident: Incident, changes: list[Change]) -> None:
        """The delivery's alert events, as one timeline entry per incident when there are many."""
        if not changes:
            return
        await self.intake.incidents.record(self.session, incident, self.actor, summarised(changes))

    async def _store_alert(self, incident: Incident, alert: NormalizedAlert, group: str) -> None:
        rows = self.known.setdefault(_id(incident), {})  # none yet if the delivery opened it
        row = rows.get(alert.fingerprint)
        fields = {
            "status": alert.status.value,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "summary": alert.summary,
            "description": alert.description,
            "links": alert.links,
            "values": alert.values,
            "severity_hint": alert.severity_hint,
            "starts_at": alert.starts_at,
            "ends_at": alert.ends_at,
            "last_seen": self.now,
            "raw": alert.raw,
            "group_key": fit_key(group, GROUP_KEY_MAX),  # a derived key can be longer
        }
        if row is None:
            row = Alert(
                incident_id=incident.id,
                source=alert.source,
                endpoint=self.endpoint.name,
                fingerprint=alert.fingerprint,
                first_seen=self.now,
                count=1,
                **fields,  # type: ignore[arg-type]
            )
            rows[alert.fingerprint] = row
            self.new_rows.append(row)
            verb = "firing" if alert.status is AlertStatus.FIRING else "resolved"
            text = f"alert {verb}: {alert.summary or alert.name}"
            self._change(incident, Change("alert", text, self._data(alert)))
            self._updated(incident)
            if alert.fingerprint not in self.openers:
                self.result.decisions.append(f"{alert.name}: new alert on {incident.key}")
            return
        previous = row.status
        for name, value in fields.items():
            setattr(row, name, value)
        row.count += 1
        self._updated(incident)
        if previous != alert.status.value:
            verb = "firing again" if alert.status is AlertStatus.FIRING else "resolved"
            text = f"alert {verb}: {alert.summary or alert.name}"
            self._change(incident, Change("alert", text, self._data(alert)))
            self.result.decisions.append(f"{alert.name}: {verb} on {incident.key}")
        else:
            self.result.decisions.append(
                f"{alert.name}: repeat on {incident.key} (seen {row.count} times)"
            )

    def _data(self, alert: NormalizedAlert) -> dict[str, object]:
        return {
            "fingerprint": alert.fingerprint,
            "status": alert.status.value,
            "source": alert.source,
            "endpoint": self.endpoint.name,
            "links": alert.links,
        }

    async def _classify(self, incident: Incident, alert: NormalizedAlert) -> None:
        """Remember the most severe verdict of the delivery's firing alerts per incident."""
        if alert.status is not AlertStatus.FIRING:
            return
        verdict: Classification = self.intake.classifier.classify(alert)
        scheme = self.intake.incidents.scheme
        best = self.verdicts.get(_id(incident))
        if best is None or scheme.rank(verdict.severity) < scheme.rank(best[0].severity):
            self.verdicts[_id(incident)] = (verdict, alert.name)

    async def _apply_verdict(self, incident: Incident) -> None:
        found = self.verdicts.pop(_id(incident), None)
        if found is None:
            return
        verdict, name = found
        scheme = self.intake.incidents.scheme
        if scheme.rank(verdict.severity) >= scheme.rank(incident.severity):
            return  # automation raises severity, it never lowers it
        await self.intake.incidents.set_severity(
            incident,
            verdict.severity,
            actor=self.actor,
            reason=verdict.reason,
            source=SeveritySource.RULE,
            session=self.session,
        )
        self.result.decisions.append(f"{name}: severity {verdict.severity} ({verdict.reason})")

    async def _acknowledge_if_asked(self, incident: Incident) -> None:
        open_unacknowledged = incident.acknowledged_at is None and incident.state.is_open
        if open_unacknowledged and asks_acknowledge(self.delivery):
            await self.intake.incidents.acknowledge(
                incident, actor=self.actor, session=self.session
            )
            self.result.decisions.append(f"{incident.key}: acknowledged at the sender")

    async def _after(self, incident: Incident) -> None:
        """Move the incident as its alerts say: back to work, or towards resolution."""
        total, firing = await self._count_alerts(incident)
        incidents = self.intake.incidents
        if firing and incident.state is Status.MONITORING:
            await incidents.set_status(
                incident,
                Status.INVESTIGATING.value,
                actor=self.actor,
                note="an alert is firing again",
                session=self.session,
            )
            self.result.decisions.append(f"{incident.key}: back to investigating")
            return
        if firing or not total or not incident.state.is_open:
            return
        policy = self.intake.policy.when_all_resolved
        text = f"all {total} alert(s) resolved"
        if policy == "resolve":
            await incidents.resolve(incident, actor=self.actor, summary=text, session=self.session)
            self.result.decisions.append(f"{incident.key}: {text}: resolved")
        elif policy == "monitoring" and incident.state is not Status.MONITORING:
            await incidents.set_status(
                incident,
                Status.MONITORING.value,
                actor=self.actor,
                note=f"{text}; resolve the incident when you are satisfied",
                session=self.session,
            )
            self.result.decisions.append(f"{incident.key}: {text}: monitoring")
        else:
            await incidents.record(self.session, incident, self.actor, [Change("alert", text)])

    async def _count_alerts(self, incident: Incident) -> tuple[int, int]:
        """How many alerts ``incident`` has, and how many of them are firing.

        When one of the rows at hand fires, that is all the caller needs: (1, 1), not counted.
        """
        firing = AlertStatus.FIRING.value
        if any(row.status == firing for row in self.known[_id(incident)].values()):
            return 1, 1
        is_firing = col(Alert.status) == firing
        query = select(sa.func.count(), sa.func.count().filter(is_firing)).where(
            col(Alert.incident_id) == incident.id
        )
        total, firing_count = (await self.session.exec(query)).one()
        return total, firing_count

    def _updated(self, incident: Incident) -> None:
        if incident.key not in self.result.opened and incident.key not in self.result.updated:
            self.result.updated.append(incident.key)


def summarised(changes: list[Change]) -> list[Change]:
    """One delivery's alert events on one incident: one entry when there are many."""
    if len(changes) <= SUMMARISE_OVER:
        return changes
    statuses = {str(c.data.get("status")) for c in changes}
    names = sorted({c.text.split(": ", 1)[-1] for c in changes})
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    data = {
        "status": statuses.pop() if len(statuses) == 1 else "mixed",
        "fingerprints": [c.data.get("fingerprint") for c in changes],
        "count": len(changes),
    }
    return [Change("alert", f"{len(changes)} alert changes: {shown}", data)]


def with_defaults(
    endpoint: Endpoint, alert: NormalizedAlert, service_labels: Sequence[str]
) -> NormalizedAlert:
    """The alert with the endpoint's labels and service as defaults."""
    if not endpoint.labels and not endpoint.service:
        return alert  # nothing to add (the common case: no copy)
    labels = {**endpoint.labels, **alert.labels}
    # The endpoint's service is a default: an alert that names its own keeps it.
    if endpoint.service and service_of(labels, service_labels) is None:
        labels.setdefault("service", endpoint.service)
    return replace(alert, labels=labels)


def group_of(endpoint: Endpoint, delivery: Delivery, alert: NormalizedAlert) -> tuple[str, bool]:
    """The alert's group key, and whether the sender grouped it (else ``group_by`` did)."""
    group_key = alert.group_key or delivery.group_key
    if group_key is not None:
        return group_key, True
    values = {k: alert.labels[k] for k in endpoint.group_by if k in alert.labels}
    if values:
        return "by:" + ",".join(f"{k}={v}" for k, v in values.items()), False
    return f"alert:{alert.fingerprint}", False  # none of the grouping labels: its own group


def group_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def asks_acknowledge(delivery: Delivery) -> bool:
    """The sender says the incident was acknowledged there (PagerDuty, a tool's action)."""
    extra = delivery.extra
    return extra.get("action") == "acknowledge" or extra.get("event_type") == (
        "incident.acknowledged"
    )


def service_of(labels: dict[str, str], names: Sequence[str]) -> str | None:
    """The value of the first of ``names`` that ``labels`` has (and is not empty)."""
    return next((labels[name] for name in names if labels.get(name)), None)


def delivery_key(raw: bytes, sender_id: str | None = None) -> str:
    """The sender's delivery id when it gives one, else the digest of the exact body."""
    if sender_id:
        return "id:" + sender_id.strip()[:190]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _id(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"
