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

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa
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


class _Run:
    """One delivery's processing inside its transaction."""

    def __init__(
        self,
        intake: Intake,
        session: AsyncSession,
        endpoint: Endpoint,
        delivery: Delivery,
        result: IntakeResult,
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
        self.groups: dict[str, AlertGroup] = {}
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
        labels = {**self.endpoint.labels, **alert.labels}
        # The endpoint's service is a default: an alert that names its own keeps it.
        if self.endpoint.service and service_of(labels, self.intake.policy.service_labels) is None:
            labels.setdefault("service", self.endpoint.service)
        return replace(alert, labels=labels)

    async def _one(self, alert: NormalizedAlert) -> None:
        group_key = alert.group_key or self.delivery.group_key
        sender_groups = group_key is not None
        if group_key is None:
            values = {k: alert.labels[k] for k in self.endpoint.group_by if k in alert.labels}
            if values:
                group_key = "by:" + ",".join(f"{k}={v}" for k, v in values.items())
            else:  # none of the grouping labels: the alert is its own group
                group_key = f"alert:{alert.fingerprint}"
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
            "group_hash": hashlib.sha256(group_key.encode()).hexdigest(),
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
        if len(changes) > SUMMARISE_OVER:
            statuses = {str(c.data.get("status")) for c in changes}
            names = sorted({c.text.split(": ", 1)[-1] for c in changes})
            shown = ", ".join(names[:10]) + (
                f" and {len(names) - 10} more" if len(names) > 10 else ""
            )
            data = {
                "status": statuses.pop() if len(statuses) == 1 else "mixed",
                "fingerprints": [c.data.get("fingerprint") for c in changes],
                "count": len(changes),
            }
            changes = [Change("alert", f"{len(changes)} alert changes: {shown}", data)]
        await self.intake.incidents.record(self.session, incident, self.actor, changes)

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
        extra = self.delivery.extra
        asked = extra.get("action") == "acknowledge" or extra.get("event_type") == (
            "incident.acknowledged"
        )
        if asked and incident.acknowledged_at is None and incident.state.is_open:
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
