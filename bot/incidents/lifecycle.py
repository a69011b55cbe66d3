"""The incident lifecycle: declare, acknowledge, classify, move, staff, note, resolve.

Every change is one transaction that updates the incident and writes its
timeline event together (and whatever the registered :class:`ChangeListener`
adds, such as outbox rows for Slack). A change the incident's state does not
allow raises :class:`~bot.errors.IllegalTransition` with a message a responder
can act on, and nothing is written.

Lifecycle::

    investigating ─► identified ─► mitigating ─► monitoring ─► resolved
          ▲______________any open state to any other___________│
                                                     reopen ◄──┘
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.errors import IllegalTransition, IncidentNotFound, InvalidInput, InvalidRole, UserError
from bot.incidents.severity import SeverityScheme
from bot.store.db import Database
from bot.store.models import Counter, FollowUp, Incident, SeveritySource, Status, TimelineEvent

log = logging.getLogger(__name__)

TITLE_MAX = 200
TEXT_MAX = 3000
#: Actors that are warroom itself (automatic diagnostics, delivery): they acknowledge nothing.
AUTOMATION = frozenset({"warroom"})


class EventKind(enum.StrEnum):
    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    SEVERITY = "severity"
    SEVERITY_KEPT = "severity_kept"
    STATUS = "status"
    ROLE = "role"
    NOTE = "note"
    FOLLOW_UP = "follow_up"
    EDITED = "edited"
    RESOLVED = "resolved"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True)
class Change:
    """One timeline entry a change produces."""

    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


#: An incident by key (``INC-0042``) or, inside a caller's transaction, the locked row itself.
Ref = str | Incident

#: Called inside the change's transaction, after the incident and its events are written.
ChangeListener = Callable[[AsyncSession, Incident, Sequence[TimelineEvent]], Awaitable[None]]


_KEY = re.compile(r"^\s*(?:([A-Za-z][A-Za-z0-9]*)-)?0*(\d{1,9})\s*$")


class Incidents:
    """The use cases on incidents. One instance per process; safe to share."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        scheme: SeverityScheme,
        roles: Sequence[str] = ("commander", "communications", "scribe"),
        key_prefix: str = "INC",
        key_digits: int = 4,
        listeners: Sequence[ChangeListener] = (),
    ) -> None:
        self.db = db
        self.clock = clock
        self.scheme = scheme
        self.roles = list(roles)
        self.key_prefix = key_prefix
        self.key_digits = key_digits
        self.listeners = list(listeners)

    # -- keys -------------------------------------------------------------

    def format_key(self, number: int) -> str:
        return f"{self.key_prefix}-{number:0{self.key_digits}d}"

    def parse_key(self, text: str) -> int:
        """``INC-0042``, ``inc-42`` or ``42`` → 42; anything else is not found."""
        match = _KEY.match(text)
        if not match or (match.group(1) and match.group(1).upper() != self.key_prefix):
            raise IncidentNotFound(text.strip())
        return int(match.group(2))

    # -- reads ------------------------------------------------------------

    async def get(self, key: str) -> Incident:
        async with self.db.transaction(read_only=True) as session:
            return await self._load(session, key, lock=False)

    async def find(
        self,
        *,
        statuses: Sequence[str] | None = None,
        open_only: bool = False,
        severity: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        order: str = "newest",
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents by status, severity, service and declaration time.

        ``order``: ``newest`` (default), ``oldest`` or ``severity`` (most severe first).
        """
        query = select(Incident)
        if open_only:
            query = query.where(col(Incident.status) != Status.RESOLVED.value)
        if statuses:
            query = query.where(col(Incident.status).in_([_status(s).value for s in statuses]))
        if severity:
            query = query.where(col(Incident.severity) == self.scheme.get(severity).name)
        if service:
            query = query.where(col(Incident.service) == service)
        if since:
            query = query.where(col(Incident.declared_at) >= since)
        if until:
            query = query.where(col(Incident.declared_at) < until)
        if order == "oldest":
            query = query.order_by(col(Incident.number))
        elif order == "severity":
            ranks = {level.name: n for n, level in enumerate(self.scheme.levels)}
            rank = sa.case(ranks, value=col(Incident.severity), else_=len(ranks))
            query = query.order_by(rank, col(Incident.number).desc())
        elif order == "newest":
            query = query.order_by(col(Incident.number).desc())
        else:
            raise InvalidInput(f"Unknown order {order!r}: use newest, oldest or severity.")
        query = query.limit(limit)
        async with self.db.transaction(read_only=True) as session:
            return list((await session.exec(query)).all())

    async def timeline(self, key: str, *, limit: int | None = None) -> list[TimelineEvent]:
        """The incident's events, oldest first (the last ``limit`` when given)."""
        async with self.db.transaction(read_only=True) as session:
            incident = await self._load(session, key, lock=False)
            query = select(TimelineEvent).where(col(TimelineEvent.incident_id) == incident.id)
            if limit is None:
                query = query.order_by(col(TimelineEvent.at), col(TimelineEvent.id))
                return list((await session.exec(query)).all())
            query = query.order_by(col(TimelineEvent.at).desc(), col(TimelineEvent.id).desc())
            return list(reversed((await session.exec(query.limit(limit))).all()))

    async def follow_ups(self, key: str) -> list[FollowUp]:
        async with self.db.transaction(read_only=True) as session:
            incident = await self._load(session, key, lock=False)
            query = (
                select(FollowUp)
                .where(col(FollowUp.incident_id) == incident.id)
                .order_by(col(FollowUp.id))
            )
            return list((await session.exec(query)).all())

    # -- changes ----------------------------------------------------------

    async def declare(
        self,
        *,
        title: str,
        actor: str,
        severity: str | None = None,
        severity_reason: str = "",
        severity_source: SeveritySource | None = None,
        service: str | None = None,
        impact: str = "",
        summary: str = "",
        commander: str | None = None,
        detected_at: datetime | None = None,
        acknowledge: bool = True,
        session: AsyncSession | None = None,
    ) -> Incident:
        """Open an incident. A person declaring it has, by doing so, acknowledged it."""
        title = _text(title, "title", TITLE_MAX, required=True)
        level = self.scheme.get(severity) if severity else self.scheme.get(self.scheme.default)
        if severity_source is None:
            severity_source = SeveritySource.PERSON if severity else SeveritySource.DEFAULT
        if not severity_reason:
            severity_reason = f"set by {actor}" if severity else f"default severity ({level.name})"
        now = self.clock.now()
        async with self._tx(session) as tx:
            number = await self._next_number(tx)
            incident = Incident(
                key=self.format_key(number),
                number=number,
                title=title,
                summary=_text(summary, "summary", TEXT_MAX),
                impact=_text(impact, "impact", TEXT_MAX),
                service=(service or "").strip() or None,
                severity=level.name,
                severity_reason=severity_reason,
                severity_source=severity_source.value,
                status=Status.INVESTIGATING.value,
                roles={"commander": commander} if commander else {},
                created_by=actor,
                detected_at=detected_at,
                declared_at=now,
                acknowledged_at=now if acknowledge else None,
                acknowledged_by=actor if acknowledge else None,
                updated_at=now,
            )
            tx.add(incident)
            await tx.flush()
            changes = [
                Change(
                    EventKind.DECLARED,
                    f"{incident.key} declared: {title} ({level.name}: {severity_reason})",
                    {"severity": level.name, "service": incident.service, "title": title},
                )
            ]
            if commander:
                changes.append(
                    Change(
                        EventKind.ROLE,
                        f"{commander} is commander",
                        {"role": "commander", "user": commander},
                    )
                )
            await self._record(tx, incident, actor, changes, now)
        log.info(
            "incident %s declared (%s)",
            incident.key,
            level.name,
            extra={"incident": incident.key, "severity": level.name},
        )
        return incident

    async def acknowledge(
        self, key: Ref, *, actor: str, session: AsyncSession | None = None
    ) -> Incident:
        def change(incident: Incident, now: datetime) -> list[Change]:
            _require_open(incident, "acknowledge")
            if incident.acknowledged_at is not None:
                raise IllegalTransition(
                    f"{incident.key} was already acknowledged by {incident.acknowledged_by} "
                    f"at {incident.acknowledged_at:%Y-%m-%d %H:%M} UTC."
                )
            incident.acknowledged_at = now
            incident.acknowledged_by = actor
            return [Change(EventKind.ACKNOWLEDGED, f"acknowledged by {actor}")]

        return await self._change(key, actor, change, session)

    async def set_severity(
        self,
        key: Ref,
        severity: str,
        *,
        actor: str,
        reason: str = "",
        source: SeveritySource = SeveritySource.PERSON,
        session: AsyncSession | None = None,
    ) -> Incident:
        """Change the severity. Automation never overrides a person: it is recorded, not applied."""
        level = self.scheme.get(severity)

        def change(incident: Incident, now: datetime) -> list[Change]:
            why = reason or (f"set by {actor}" if source is SeveritySource.PERSON else "automatic")
            data = {
                "from": incident.severity,
                "to": level.name,
                "source": source.value,
                "reason": why,
            }
            if source is not SeveritySource.PERSON and (
                incident.severity_source == SeveritySource.PERSON.value
            ):
                if level.name == incident.severity:
                    return []
                return [
                    Change(
                        EventKind.SEVERITY_KEPT,
                        f"{why} suggests {level.name}; keeping {incident.severity}, "
                        f"which a person set ({incident.severity_reason})",
                        data,
                    )
                ]
            if level.name == incident.severity:
                if source is SeveritySource.PERSON:
                    if incident.severity_source != SeveritySource.PERSON.value:
                        incident.severity_source = source.value
                        incident.severity_reason = why
                        return [Change(EventKind.SEVERITY, f"{level.name} confirmed: {why}", data)]
                    raise UserError(f"{incident.key} is already {level.name}.")
                return []
            incident.severity = level.name
            incident.severity_reason = why
            incident.severity_source = source.value
            return [
                Change(EventKind.SEVERITY, f"severity {data['from']} → {level.name}: {why}", data)
            ]

        return await self._change(key, actor, change, session)

    async def set_status(
        self,
        key: Ref,
        status: str,
        *,
        actor: str,
        note: str = "",
        session: AsyncSession | None = None,
    ) -> Incident:
        target = _status(status)
        if target is Status.RESOLVED:
            return await self.resolve(key, actor=actor, summary=note, session=session)
        note = _text(note, "note", TEXT_MAX)

        def change(incident: Incident, now: datetime) -> list[Change]:
            current = incident.state
            if current is Status.RESOLVED:
                raise IllegalTransition(
                    f"{incident.key} is resolved. Reopen it first "
                    f"(`/incident reopen` or `warroom incident reopen {incident.key}`)."
                )
            if target is current:
                raise IllegalTransition(f"{incident.key} is already {current.value}.")
            data: dict[str, Any] = {"from": current.value, "to": target.value}
            incident.status = target.value
            if target is Status.MONITORING and incident.mitigated_at is None:
                incident.mitigated_at = now
            elif target is not Status.MONITORING and incident.mitigated_at is not None:
                data["mitigation_undone"] = incident.mitigated_at.isoformat()
                incident.mitigated_at = None
            text = f"status {current.value} → {target.value}" + (f": {note}" if note else "")
            return [Change(EventKind.STATUS, text, data)]

        return await self._change(key, actor, change, session)

    async def assign(self, key: str, role: str, user: str, *, actor: str) -> Incident:
        role = role.strip().lower()
        if role in ("lead", "ic"):
            role = "commander"
        if role not in self.roles:
            raise InvalidRole(role, self.roles)
        user = _text(user, "user", 100, required=True)

        def change(incident: Incident, now: datetime) -> list[Change]:
            previous = incident.roles.get(role)
            if previous == user:
                raise UserError(f"{user} is already {role} of {incident.key}.")
            incident.roles = {**incident.roles, role: user}
            text = f"{user} is {role}" + (f" (was {previous})" if previous else "")
            implied = self.implied_acknowledgement(incident, actor, f"assigned the {role} role")
            return [
                *implied,
                Change(EventKind.ROLE, text, {"role": role, "user": user, "previous": previous}),
            ]

        return await self._change(key, actor, change)

    async def note(
        self, key: Ref, text: str, *, actor: str, session: AsyncSession | None = None
    ) -> Incident:
        text = _text(text, "note", TEXT_MAX, required=True)
        return await self._change(
            key, actor, lambda _i, _n: [Change(EventKind.NOTE, text)], session
        )

    async def edit(
        self,
        key: str,
        *,
        actor: str,
        title: str | None = None,
        impact: str | None = None,
        summary: str | None = None,
        service: str | None = None,
    ) -> Incident:
        given = {"title": title, "impact": impact, "summary": summary, "service": service}
        fields = {
            name: _text(
                value, name, TITLE_MAX if name == "title" else TEXT_MAX, required=name == "title"
            )
            for name, value in given.items()
            if value is not None
        }
        if not fields:
            raise InvalidInput("Nothing to change: give a title, impact, summary or service.")

        def change(incident: Incident, now: datetime) -> list[Change]:
            changes = []
            for name, value in fields.items():
                if getattr(incident, name) != value:
                    setattr(incident, name, value or None if name == "service" else value)
                    changes.append(
                        Change(
                            EventKind.EDITED, f"{name}: {value}", {"field": name, "value": value}
                        )
                    )
            return changes

        return await self._change(key, actor, change)

    async def add_follow_up(
        self,
        key: str,
        text: str,
        *,
        actor: str,
        owner: str | None = None,
        tracker: str | None = None,
    ) -> FollowUp:
        """Record a follow-up; ``tracker`` (a ticket target's name) goes on its event, where
        the ticket listener (``bot.delivery.tickets``) reads which target to file it on."""
        text = _text(text, "follow-up", TEXT_MAX, required=True)
        owner = (owner or "").strip() or None
        now = self.clock.now()
        async with self.db.transaction() as session:
            incident = await self._load(session, key, lock=True)
            follow_up = FollowUp(
                incident_id=_id(incident), text=text, owner=owner, created_by=actor, created_at=now
            )
            session.add(follow_up)
            await session.flush()
            who = f" (owner {owner})" if owner else ""
            change = Change(
                EventKind.FOLLOW_UP,
                f"follow-up #{follow_up.id}: {text}{who}",
                {"follow_up_id": follow_up.id, "owner": owner}
                | ({"tracker": tracker} if tracker else {}),
            )
            await self._record(session, incident, actor, [change], now)
        return follow_up

    async def resolve(
        self,
        key: Ref,
        *,
        actor: str,
        summary: str = "",
        root_cause: str = "",
        resolution: str = "",
        session: AsyncSession | None = None,
    ) -> Incident:
        summary = _text(summary, "summary", TEXT_MAX)
        root_cause = _text(root_cause, "root cause", TEXT_MAX)
        resolution = _text(resolution, "resolution", TEXT_MAX)

        def change(incident: Incident, now: datetime) -> list[Change]:
            if incident.state is Status.RESOLVED:
                raise IllegalTransition(
                    f"{incident.key} was already resolved at "
                    f"{incident.resolved_at:%Y-%m-%d %H:%M} UTC."
                )
            data: dict[str, Any] = {"from": incident.status}
            incident.status = Status.RESOLVED.value
            incident.resolved_at = now
            if incident.mitigated_at is None:
                incident.mitigated_at = now
            if summary:
                incident.summary = summary
            if root_cause:
                incident.root_cause = root_cause
                data["root_cause"] = root_cause
            if resolution:
                incident.resolution = resolution
                data["resolution"] = resolution
            return [
                Change(
                    EventKind.RESOLVED,
                    f"resolved by {actor}" + (f": {summary}" if summary else ""),
                    data,
                )
            ]

        return await self._change(key, actor, change, session)

    async def reopen(
        self, key: Ref, *, actor: str, reason: str = "", session: AsyncSession | None = None
    ) -> Incident:
        reason = _text(reason, "reason", TEXT_MAX)

        def change(incident: Incident, now: datetime) -> list[Change]:
            if incident.state is not Status.RESOLVED:
                raise IllegalTransition(
                    f"{incident.key} is still open ({incident.status}); "
                    "only a resolved incident can be reopened."
                )
            data = {
                "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None
            }
            incident.status = Status.INVESTIGATING.value
            incident.resolved_at = None
            incident.mitigated_at = None
            return [
                Change(EventKind.REOPENED, "reopened" + (f": {reason}" if reason else ""), data)
            ]

        return await self._change(key, actor, change, session)

    def implied_acknowledgement(self, incident: Incident, actor: str, why: str) -> list[Change]:
        """Acknowledge ``incident`` for ``actor``'s first act on it (running a step, a role).

        A person acting on an open, unacknowledged incident has acknowledged it: the change is
        applied to ``incident`` and returned, to record with the act (once: afterwards the
        incident is acknowledged). Nothing for warroom's own actors or a resolved incident.
        """
        if (
            incident.acknowledged_at is not None
            or incident.state is Status.RESOLVED
            or actor in AUTOMATION
        ):
            return []
        incident.acknowledged_at = self.clock.now()
        incident.acknowledged_by = actor
        return [
            Change(
                EventKind.ACKNOWLEDGED,
                f"acknowledged by {actor} ({why})",
                {"implied_by": why},
            )
        ]

    # -- internals --------------------------------------------------------

    @asynccontextmanager
    async def _tx(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """The caller's transaction when it passes one, else a new one."""
        if session is not None:
            yield session
            return
        async with self.db.transaction() as new:
            yield new

    async def _change(
        self,
        key: Ref,
        actor: str,
        apply: Callable[[Incident, datetime], list[Change]],
        session: AsyncSession | None = None,
    ) -> Incident:
        now = self.clock.now()
        async with self._tx(session) as tx:
            incident = key if isinstance(key, Incident) else await self._load(tx, key, lock=True)
            changes = apply(incident, now)
            if changes:
                await self.record(tx, incident, actor, changes)
        return incident

    async def record(
        self, session: AsyncSession, incident: Incident, actor: str, changes: Sequence[Change]
    ) -> None:
        """Write ``changes`` on the incident's timeline and bump its version, in ``session``."""
        now = self.clock.now()
        incident.updated_at = now
        incident.version += 1
        session.add(incident)
        await self._record(session, incident, actor, changes, now)

    async def record_many(
        self, session: AsyncSession, entries: Sequence[tuple[Incident, str, Sequence[Change]]]
    ) -> None:
        """``record`` for many (incident, actor, changes) at once, in ``session``: the events in
        one statement, each listener called once with every incident's events (a listener
        with a ``many`` method decides for all of them together, e.g. one card refresh per
        incident). The events get no ids: for changes whose listeners need none (alerts)."""
        now = self.clock.now()
        by_incident: dict[int, tuple[Incident, list[TimelineEvent]]] = {}
        rows: list[dict[str, Any]] = []
        versions: dict[int, int] = {}
        for incident, actor, changes in entries:
            if not changes:
                continue
            versions[_id(incident)] = versions.get(_id(incident), incident.version) + 1
            events = by_incident.setdefault(_id(incident), (incident, []))[1]
            for c in changes:
                row: dict[str, Any] = {
                    "incident_id": _id(incident),
                    "at": now,
                    "kind": str(c.kind),
                    "actor": actor,
                    "text": c.text,
                    "data": c.data,
                }
                rows.append(row)
                # Not validated (the values are the ones just written), a tenth of the cost.
                events.append(TimelineEvent.model_construct(**row))
        if not rows:
            return
        # The incidents' rows in one statement; the objects are told the values as stored.
        bumps = [{"b_id": i, "b_version": v, "b_updated": now} for i, v in versions.items()]
        await session.exec(_BUMP, params=bumps)
        for incident, _ in by_incident.values():
            set_committed_value(incident, "version", versions[_id(incident)])
            set_committed_value(incident, "updated_at", now)
        await session.exec(sa.insert(_TIMELINE), params=rows)
        items = [(incident, events) for incident, events in by_incident.values()]
        for listener in self.listeners:
            many = getattr(listener, "many", None)
            if many is not None:
                await many(session, items)
                continue
            for incident, found in items:
                await listener(session, incident, found)

    async def lock_key(self, session: AsyncSession, key: str) -> Incident:
        """Load an incident by key for update, inside the caller's transaction."""
        return await self._load(session, key, lock=True)

    async def by_channel(self, channel_id: str) -> Incident | None:
        """The incident whose Slack channel is ``channel_id``, if any."""
        async with self.db.transaction(read_only=True) as session:
            query = select(Incident).where(col(Incident.channel_id) == channel_id)
            return (await session.exec(query)).first()

    async def lock(self, session: AsyncSession, incident_id: int) -> Incident:
        """Load an incident by id for update, inside the caller's transaction."""
        query = select(Incident).where(col(Incident.id) == incident_id).with_for_update()
        incident = (await session.exec(query)).first()
        if incident is None:
            raise IncidentNotFound(f"#{incident_id}")
        return incident

    async def _record(
        self,
        session: AsyncSession,
        incident: Incident,
        actor: str,
        changes: Sequence[Change],
        now: datetime,
    ) -> None:
        events = [
            TimelineEvent(
                incident_id=_id(incident),
                at=now,
                kind=str(c.kind),
                actor=actor,
                text=c.text,
                data=c.data,
            )
            for c in changes
        ]
        session.add_all(events)
        await session.flush()
        for listener in self.listeners:
            await listener(session, incident, events)

    async def _load(self, session: AsyncSession, key: str, *, lock: bool) -> Incident:
        number = self.parse_key(key)
        query = select(Incident).where(col(Incident.number) == number)
        if lock:
            query = query.with_for_update()
        incident = (await session.exec(query)).first()
        if incident is None:
            raise IncidentNotFound(self.format_key(number))
        return incident

    async def _next_number(self, session: AsyncSession) -> int:
        """The next incident number, gap-free: the counter row stays locked until commit."""
        statement = (
            sa.update(Counter)
            .where(col(Counter.name) == "incident")
            .values(value=col(Counter.value) + 1)
            .returning(col(Counter.value))
        )
        result = await session.exec(statement)
        value = result.scalar_one()
        return int(value)


_INCIDENT: sa.Table = Incident.__table__  # type: ignore[attr-defined]
_TIMELINE: sa.Table = TimelineEvent.__table__  # type: ignore[attr-defined]
_BUMP = (
    sa.update(_INCIDENT)
    .where(_INCIDENT.c.id == sa.bindparam("b_id"))
    .values(version=sa.bindparam("b_version"), updated_at=sa.bindparam("b_updated"))
)


def _id(incident: Incident) -> int:
    assert incident.id is not None, "incident was not flushed"
    return incident.id


def _status(value: str) -> Status:
    try:
        return Status(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise InvalidInput(f"Unknown status {value!r}: use one of {names}.") from None


def _require_open(incident: Incident, verb: str) -> None:
    if incident.state is Status.RESOLVED:
        raise IllegalTransition(f"Cannot {verb} {incident.key}: it is resolved. Reopen it first.")


def _text(value: str, name: str, limit: int, *, required: bool = False) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"The {name} must not be empty.")
    if len(text) > limit:
        raise InvalidInput(f"The {name} is {len(text)} characters long; the limit is {limit}.")
    return text
