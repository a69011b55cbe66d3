"""Paging out and escalation: outbox rows written with the change, delivered through the port.

:class:`PageListener` is a :data:`~bot.incidents.lifecycle.ChangeListener`. In the change's own
transaction it writes the rows that tell the pager: a ``page_trigger`` per target of every
``paging.rules`` entry the incident matches when it is declared (or opened by an alert),
reopened, or raised to a severity that matches more rules; a ``page_acknowledge`` per paged
target when it is acknowledged; a ``page_resolve`` when it is resolved. With
``paging.escalation`` steps and nobody's acknowledgement yet, it schedules the first
``escalate`` row at ``declared_at`` + the severity's response time.

An incident's pages are grouped by *cycle*: the id of its ``declared`` (or latest ``reopened``)
timeline event. Dedupe keys carry it, so each target is triggered once per cycle however many
changes match, and each escalation step fires once per cycle.

:class:`PagingDelivery` is the worker side. ``page_*`` rows call the paging port and put its
answer on the timeline (and the pages and failures in the channel). An ``escalate`` row, when it
comes due, re-checks under the incident's lock (still open, still unacknowledged, the same
cycle, the same severity, the step not fired yet); only then does it record the escalation, page
the step's target and schedule the next step, in one transaction. It is a row like any other:
it survives restarts, and one worker of many claims it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.settings import PagingSettings, Settings
from bot.delivery.outbox import FAILED, Deliver, enqueue
from bot.errors import UserError
from bot.incidents.lifecycle import Change, EventKind, Incidents
from bot.incidents.severity import SeverityScheme
from bot.ports.paging import PageAlert, Pager, PageReceipt, PageRefused, PageUnavailable
from bot.store.db import Database
from bot.store.models import Incident, OutboxRow, TimelineEvent

log = logging.getLogger(__name__)

TRIGGER = "page_trigger"
ACKNOWLEDGE = "page_acknowledge"
RESOLVE = "page_resolve"
ESCALATE = "escalate"

PAGE_REQUESTED = "page_requested"
PAGED = "paged"
PAGE_ACKNOWLEDGED = "page_acknowledged"
PAGE_RESOLVED = "page_resolved"
PAGE_FAILED = "page_failed"
ESCALATED = "escalated"

#: Outcomes told in the channel as they are on the timeline.
_TOLD = {PAGED, PAGE_FAILED, ESCALATED}
_CYCLE_KINDS = (EventKind.DECLARED.value, EventKind.REOPENED.value)
ACTOR = "warroom"


class NoPager(Exception):
    """This process has no paging adapter (a CLI run): the server's worker delivers it."""


def lane(incident: Incident) -> str:
    """Pages have their own lane, in order (trigger, acknowledge, resolve), apart from the chat."""
    return f"{incident.key}:paging"


def _escalation_lane(incident: Incident, cycle: int, step: int, severity: str) -> str:
    # Each scheduled step in a lane of its own: a lane's oldest pending row holds up the rest,
    # and a step due in 4 hours must not hold up the one a raised severity made due sooner.
    return f"{incident.key}:escalate:{cycle}:{step}:{severity}"[:80]


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return f"{int(value.total_seconds())} s"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


@dataclass(frozen=True)
class PagingPolicy:
    """``paging:`` with what it needs from the rest of the settings."""

    settings: PagingSettings
    scheme: SeverityScheme
    public_url: str | None = None
    #: Endpoints whose incidents come from PagerDuty itself: paging them again would loop.
    quiet_endpoints: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> PagingPolicy:
        quiet = frozenset(n for n, h in settings.webhooks.items() if h.source == "pagerduty")
        return cls(settings.paging, settings.severity_scheme(), settings.server.public_url, quiet)

    @property
    def configured(self) -> bool:
        return bool(self.settings.targets)

    def vendor(self, target: str) -> str:
        if target in self.settings.pagerduty:
            return "PagerDuty"
        return "Opsgenie" if target in self.settings.opsgenie else "pager"

    def targets_for(self, incident: Incident) -> list[str]:
        if incident.created_by in self.quiet_endpoints:
            return []
        found = [
            r.target
            for r in self.settings.rules
            if r.matches(service=incident.service, severity=incident.severity)
        ]
        return list(dict.fromkeys(found))

    def page_url(self, key: str) -> str | None:
        base = self.public_url
        return f"{base.rstrip('/')}/incidents/{key}" if base else None

    def first_due(self, incident: Incident) -> datetime:
        level = self.scheme.get(incident.severity)
        extra = self.settings.escalation[0].after or timedelta(0)
        return incident.declared_at + level.response_time + extra


async def _cycle(session: AsyncSession, incident: Incident) -> int:
    """The id of the incident's ``declared`` or latest ``reopened`` event."""
    query = (
        select(col(TimelineEvent.id))
        .where(
            col(TimelineEvent.incident_id) == incident.id,
            col(TimelineEvent.kind).in_(_CYCLE_KINDS),
        )
        .order_by(col(TimelineEvent.id).desc())
        .limit(1)
    )
    found = (await session.exec(query)).first()
    return int(found or 0)


async def _triggered(session: AsyncSession, incident: Incident, cycle: int) -> list[str]:
    """The targets paged (or being paged) in ``cycle``; refused pages are left out."""
    query = (
        select(OutboxRow)
        .where(
            col(OutboxRow.incident_id) == incident.id,
            col(OutboxRow.kind) == TRIGGER,
            col(OutboxRow.status) != FAILED,
        )
        .order_by(col(OutboxRow.id))
    )
    rows = (await session.exec(query)).all()
    return list(
        dict.fromkeys(str(r.payload["target"]) for r in rows if r.payload.get("cycle") == cycle)
    )


async def _page_row(
    session: AsyncSession,
    incident: Incident,
    kind: str,
    target: str,
    cycle: int,
    now: datetime,
    *,
    reason: str,
    dedupe_key: str | None,
) -> OutboxRow | None:
    return await enqueue(
        session,
        lane=lane(incident),
        kind=kind,
        payload={"target": target, "cycle": cycle, "reason": reason},
        now=now,
        incident_id=incident.id,
        dedupe_key=dedupe_key[:200] if dedupe_key else None,
    )


class PageListener:
    """A change listener writing the paging rows of each change, in its transaction."""

    def __init__(self, policy: PagingPolicy) -> None:
        self.policy = policy

    async def many(
        self, session: AsyncSession, items: Sequence[tuple[Incident, Sequence[TimelineEvent]]]
    ) -> None:
        """Many incidents' events at once: nothing to do unless paging is configured."""
        if not self.policy.configured:
            return
        for incident, events in items:
            await self(session, incident, events)

    async def __call__(
        self, session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        if not self.policy.configured:
            return
        now = max(e.at for e in events)
        for event in events:
            if event.kind in _TOLD:
                await enqueue(
                    session,
                    lane=incident.key,
                    kind="message",
                    payload={"text": event.text},
                    now=now,
                    incident_id=incident.id,
                )
        kinds = {e.kind for e in events}
        opened = next((e for e in reversed(events) if e.kind in _CYCLE_KINDS), None)
        if opened is not None and opened.id is not None:
            how = "declared" if opened.kind == EventKind.DECLARED else "reopened"
            await self._page_rules(session, incident, opened.id, now, reason=f"{how}")
            return
        if EventKind.SEVERITY in kinds and incident.state.is_open:
            cycle = await _cycle(session, incident)
            await self._page_rules(
                session, incident, cycle, now, reason=f"severity now {incident.severity}"
            )
        for kind, row_kind, verb in (
            (EventKind.ACKNOWLEDGED, ACKNOWLEDGE, "page-ack"),
            (EventKind.RESOLVED, RESOLVE, "page-resolve"),
        ):
            if kind in kinds:
                cycle = await _cycle(session, incident)
                for target in await _triggered(session, incident, cycle):
                    await _page_row(
                        session,
                        incident,
                        row_kind,
                        target,
                        cycle,
                        now,
                        reason=str(kind),
                        dedupe_key=f"{verb}:{incident.key}:{cycle}:{target}",
                    )

    async def _page_rules(
        self, session: AsyncSession, incident: Incident, cycle: int, now: datetime, *, reason: str
    ) -> None:
        targets = self.policy.targets_for(incident)
        for target in targets:
            await _page_row(
                session,
                incident,
                TRIGGER,
                target,
                cycle,
                now,
                reason=f"{reason} ({incident.severity})",
                dedupe_key=f"page:{incident.key}:{cycle}:{target}",
            )
        steps = self.policy.settings.escalation
        if not targets or not steps or incident.acknowledged_at is not None:
            return
        due = self.policy.first_due(incident)
        await _schedule(session, incident, cycle, 1, incident.severity, due, now)


async def _schedule(
    session: AsyncSession,
    incident: Incident,
    cycle: int,
    step: int,
    severity: str,
    due: datetime,
    now: datetime,
) -> None:
    await enqueue(
        session,
        lane=_escalation_lane(incident, cycle, step, severity),
        kind=ESCALATE,
        payload={"cycle": cycle, "step": step, "severity": severity, "due": due.isoformat()},
        now=now,
        incident_id=incident.id,
        # Step 1 once per severity (a raised severity makes it due sooner); later steps once.
        dedupe_key=f"escalate:{incident.key}:{cycle}:{step}"
        + (f":{severity}" if step == 1 else ""),
        not_before=due,
    )


class Paging:
    """Paging by hand: ``/incident page <target>``."""

    def __init__(self, db: Database, incidents: Incidents, policy: PagingPolicy) -> None:
        self.db = db
        self.incidents = incidents
        self.policy = policy

    async def page(self, key: str, target: str, *, actor: str) -> str:
        """Write the trigger and the request on the timeline; the worker pages."""
        known = self.policy.settings.targets
        if not known:
            raise UserError(
                "Paging is not configured: add a `paging.pagerduty` or `paging.opsgenie` target "
                "(README, “Paging and escalation”)."
            )
        if target not in known:
            names = ", ".join(f"`{t}`" for t in known)
            shown = target.replace("`", "'")[:40]
            raise UserError(f"No paging target `{shown}`: use one of {names}.")
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            if not incident.state.is_open:
                raise UserError(f"{incident.key} is resolved: reopen it before paging anyone.")
            cycle = await _cycle(session, incident)
            now = self.incidents.clock.now()
            await _page_row(
                session,
                incident,
                TRIGGER,
                target,
                cycle,
                now,
                reason=f"paged by {actor}",
                dedupe_key=None,
            )
            text = f"📟 {actor} asked to page `{target}` ({self.policy.vendor(target)})"
            change = Change(PAGE_REQUESTED, text, {"target": target})
            await self.incidents.record(session, incident, actor, [change])
        return incident.key


class PagingDelivery:
    """The worker's paging kinds: the port's call, then its outcome on the timeline."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        pager: Pager | None,
        policy: PagingPolicy | None,
        *,
        max_attempts: int,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.pager = pager
        self.policy = policy
        self.max_attempts = max_attempts

    def kinds(self) -> dict[str, Deliver]:
        return {
            TRIGGER: self.trigger,
            ACKNOWLEDGE: self.acknowledge,
            RESOLVE: self.resolve,
            ESCALATE: self.escalate,
        }

    def _port(self) -> Pager:
        if self.pager is None:
            raise NoPager("no paging adapter in this process")
        return self.pager

    def _vendor(self, target: str) -> str:
        return self.policy.vendor(target) if self.policy else "pager"

    async def trigger(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port, target = self._port(), str(row.payload["target"])
        alert = self._alert(incident)
        receipt = await self._call(row, incident, "page", port.trigger(target, incident.key, alert))
        said = receipt.message or "accepted"
        text = (
            f"📟 Paged `{target}` ({self._vendor(target)}) for {incident.key}, "
            f"{row.payload.get('reason', '')}: {said} (dedup key `{receipt.dedup_key}`)"
        )
        await self._record(incident, PAGED, text, row, receipt)
        return {"dedup_key": receipt.dedup_key, "message": receipt.message}

    async def acknowledge(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port, target = self._port(), str(row.payload["target"])
        receipt = await self._call(
            row, incident, "acknowledge", port.acknowledge(target, incident.key)
        )
        text = f"📟 {self._vendor(target)} alert `{receipt.dedup_key}` on `{target}` acknowledged"
        await self._record(incident, PAGE_ACKNOWLEDGED, text, row, receipt)
        return {"dedup_key": receipt.dedup_key, "message": receipt.message}

    async def resolve(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port, target = self._port(), str(row.payload["target"])
        receipt = await self._call(row, incident, "resolve", port.resolve(target, incident.key))
        text = f"📟 {self._vendor(target)} alert `{receipt.dedup_key}` on `{target}` resolved"
        await self._record(incident, PAGE_RESOLVED, text, row, receipt)
        return {"dedup_key": receipt.dedup_key, "message": receipt.message}

    async def _call(
        self, row: OutboxRow, incident: Incident, verb: str, call: Awaitable[PageReceipt]
    ) -> PageReceipt:
        target = str(row.payload["target"])
        try:
            return await call
        except PageRefused as error:
            await self._failed(row, incident, verb, target, f"refused: {error}")
            raise
        except PageUnavailable as error:
            if row.attempts + 1 >= self.max_attempts:
                what = f"gave up after {row.attempts + 1} attempts: {error}"
                await self._failed(row, incident, verb, target, what)
            raise

    def _alert(self, incident: Incident) -> PageAlert:
        scheme = self.incidents.scheme
        level = scheme.get(incident.severity)
        link = self.policy.page_url(incident.key) if self.policy else None
        details = {
            "incident": incident.key,
            "title": incident.title,
            "severity": f"{level.name} ({level.label})",
            "status": incident.status,
            "declared_at": incident.declared_at.isoformat(),
        }
        if incident.service:
            details["service"] = incident.service
        if incident.channel_name:
            details["slack_channel"] = f"#{incident.channel_name}"
        if link:
            details["link"] = link
        return PageAlert(
            summary=f"{incident.key} [{level.name}] {incident.title}"[:1024],
            source=incident.service or "warroom",
            severity=level.name,
            rank=scheme.rank(level.name),
            at=incident.detected_at or incident.declared_at,
            component=incident.service,
            link=link,
            details=details,
        )

    async def escalate(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        if self.policy is None:
            return {"skipped": "paging is not configured in this process"}
        steps = self.policy.settings.escalation
        p = row.payload
        step, cycle = int(p["step"]), int(p["cycle"])
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            why = await self._stale(session, locked, step, cycle, str(p["severity"]))
            if why is not None:
                log.info("escalation of %s step %s not needed: %s", locked.key, step, why)
                return {"skipped": why}
            now = self.incidents.clock.now()
            level = self.incidents.scheme.get(locked.severity)
            target = steps[step - 1].page
            text = (
                f"⏰ {locked.key} ({level.name}) is still not acknowledged, "
                f"{_duration(now - locked.declared_at)} after it was declared (response time "
                f"{_duration(level.response_time)}): escalation step {step} of {len(steps)}"
                + (f", paging `{target}` ({self.policy.vendor(target)})" if target else "")
                + ". Acknowledge it (`/incident ack`) to stop the escalation."
            )
            data = {"step": step, "of": len(steps), "cycle": cycle, "target": target}
            await self.incidents.record(session, locked, ACTOR, [Change(ESCALATED, text, data)])
            if target:
                await _page_row(
                    session,
                    locked,
                    TRIGGER,
                    target,
                    cycle,
                    now,
                    reason=f"escalation step {step}",
                    dedupe_key=f"escalate-page:{locked.key}:{cycle}:{step}",
                )
            if step < len(steps):
                due = datetime.fromisoformat(p["due"]) + (steps[step].after or level.response_time)
                await _schedule(session, locked, cycle, step + 1, locked.severity, due, now)
        return {"escalated": step, "target": target}

    async def _stale(
        self, session: AsyncSession, incident: Incident, step: int, cycle: int, severity: str
    ) -> str | None:
        """Why this escalation step must not fire now; None when it must."""
        if not incident.state.is_open:
            return "resolved"
        if incident.acknowledged_at is not None:
            return f"acknowledged by {incident.acknowledged_by}"
        assert self.policy is not None
        if step > len(self.policy.settings.escalation):
            return "no such step in paging.escalation any more"
        if await _cycle(session, incident) != cycle:
            return "reopened since"
        if step == 1 and severity != incident.severity:
            return f"severity changed to {incident.severity}"
        query = select(TimelineEvent).where(
            col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == ESCALATED
        )
        for event in (await session.exec(query)).all():
            if event.data.get("step") == step and event.data.get("cycle") == cycle:
                return "fired already"
        return None

    async def _failed(
        self, row: OutboxRow, incident: Incident, verb: str, target: str, error: str
    ) -> None:
        text = f"⚠️ Could not {verb} `{target}` ({self._vendor(target)}): {error}"[:3000]
        data = {"action": row.kind, "target": target, "error": error[:500], "outbox": row.id}
        await self._write(incident, [Change(PAGE_FAILED, text, data)])

    async def _record(
        self, incident: Incident, kind: str, text: str, row: OutboxRow, receipt: PageReceipt
    ) -> None:
        data = {
            "target": row.payload["target"],
            "dedup_key": receipt.dedup_key,
            "message": receipt.message,
            "outbox": row.id,
        }
        await self._write(incident, [Change(kind, text, data)])

    async def _write(self, incident: Incident, changes: list[Change]) -> None:
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            await self.incidents.record(session, locked, ACTOR, changes)


def _id(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id
