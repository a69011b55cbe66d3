"""Follow-ups filed as tickets, and their state read back: outbox rows over the ticket port.

:class:`TicketListener` is a change listener. With ``tickets.targets`` configured, a follow-up
recorded (``/incident followup …``) gets a ``ticket_file`` row in the same transaction, for
the target it named (``tracker:<name>``) or the default one. :class:`Tickets` files existing
follow-ups by hand (``/incident followup file <id|all>``).

:class:`TicketDelivery` is the worker side. ``ticket_file`` files the follow-up once: the
``external_record`` row (``ref`` ``ticket:<target>:<follow-up id>``) says it is filed already;
a retry (or a row another worker had claimed) first looks for the ticket by its marker, so a
first attempt that went through unseen is found instead of filed twice. Then, in one
transaction: the record, the follow-up's ``url``, the ``ticket_filed`` event (told in the
channel) and the first ``ticket_poll`` row. A refusal, or the last failed attempt, is a
``ticket_failed`` event.

``ticket_poll`` reads the ticket back (with its version: an ETag, an ``updated`` time), every
``tickets.poll_open`` while the incident is open and every ``tickets.poll_resolved`` after.
Each poll schedules the next in a lane of its own and names it on the record, so only the
latest scheduled poll continues (a poll asked for by hand supersedes the one waiting). When the
ticket is done, the follow-up is marked done (``status``, ``done_at``) with a ``followup_done``
event, and polling stops.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.sections import TicketSettings
from bot.config.settings import Settings
from bot.delivery.outbox import Deliver, enqueue
from bot.errors import UserError
from bot.incidents.lifecycle import Change, EventKind, Incidents
from bot.ports.errors import NoAdapter, Refused, Throttled, Unavailable
from bot.ports.tickets import TicketDraft, TicketRef, Tracker
from bot.store.db import Database
from bot.store.models import ExternalRecord, FollowUp, Incident, OutboxRow, TimelineEvent

log = logging.getLogger(__name__)

FILE = "ticket_file"
POLL = "ticket_poll"

TICKET_FILED = "ticket_filed"
TICKET_FAILED = "ticket_failed"
FOLLOWUP_DONE = "followup_done"

#: Outcomes told in the channel as they are on the timeline.
_TOLD = {TICKET_FILED, TICKET_FAILED, FOLLOWUP_DONE}
ACTOR = "warroom"
KIND = "ticket"
_VENDORS = {"jira": "Jira", "github": "GitHub"}


def ref_of(target: str, follow_up_id: int) -> str:
    return f"ticket:{target}:{follow_up_id}"


def marker_of(incident: Incident, follow_up_id: int) -> str:
    """Letters, digits and ``-`` only, so a Jira label can hold it."""
    return f"warroom-{incident.key}-{follow_up_id}"


def _file_lane(incident: Incident) -> str:
    return f"{incident.key}:tickets"


def _id(thing: Incident | FollowUp | ExternalRecord | OutboxRow) -> int:
    assert thing.id is not None
    return thing.id


@dataclass(frozen=True)
class TicketPolicy:
    """``tickets:`` with what it needs from the rest of the settings."""

    settings: TicketSettings
    public_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TicketPolicy:
        return cls(settings.tickets, settings.server.public_url)

    @property
    def configured(self) -> bool:
        return bool(self.settings.targets)

    def vendor(self, target: str) -> str:
        config = self.settings.targets.get(target)
        return _VENDORS.get(config.kind, "tracker") if config else "tracker"

    def page_url(self, key: str) -> str | None:
        base = self.public_url
        return f"{base.rstrip('/')}/incidents/{key}" if base else None

    def target(self, named: str | None) -> str:
        """The target to file on: ``named`` (checked), else the default; UserError if none."""
        known = self.settings.targets
        if not known:
            raise UserError(
                "Follow-up tickets are not configured: add a `tickets.targets` entry (Jira or "
                "GitHub; README, “Follow-up tickets”)."
            )
        if named is None:
            chosen = self.settings.default_target
            if chosen is None:
                names = ", ".join(f"`{t}`" for t in known)
                raise UserError(
                    f"Several ticket targets and no `tickets.default`: name one with "
                    f"`tracker:<name>` ({names})."
                )
            return chosen
        if named not in known:
            names = ", ".join(f"`{t}`" for t in known)
            shown = named.replace("`", "'")[:40]
            raise UserError(f"No ticket target `{shown}`: use one of {names}.")
        return named


async def _enqueue_file(
    session: AsyncSession,
    incident: Incident,
    follow_up_id: int,
    target: str,
    now: datetime,
    *,
    dedupe: bool,
) -> None:
    await enqueue(
        session,
        lane=_file_lane(incident),
        kind=FILE,
        payload={"follow_up": follow_up_id, "target": target},
        now=now,
        incident_id=incident.id,
        dedupe_key=f"ticket-file:{incident.key}:{target}:{follow_up_id}"[:200] if dedupe else None,
    )


async def _enqueue_poll(
    session: AsyncSession, incident: Incident, record: ExternalRecord, due: datetime, now: datetime
) -> OutboxRow | None:
    """Schedule a poll of ``record`` at ``due`` and make it the record's current one."""
    row = await enqueue(
        session,
        lane=f"{incident.key}:ticket-poll:{_id(record)}:{due.isoformat()}"[:80],
        kind=POLL,
        payload={"record": _id(record), "due": due.isoformat()},
        now=now,
        incident_id=incident.id,
        not_before=due,
    )
    if row is not None:
        await session.flush()
        record.data = {**record.data, "poll_row": row.id}
        session.add(record)
    return row


class TicketListener:
    """A change listener: a ``ticket_file`` row per follow-up recorded, and the outcomes told."""

    def __init__(self, policy: TicketPolicy) -> None:
        self.policy = policy

    async def __call__(
        self, session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        if not self.policy.configured:
            return
        for event in events:
            if event.kind in _TOLD:
                await enqueue(
                    session,
                    lane=incident.key,
                    kind="message",
                    payload={"text": event.text},
                    now=event.at,
                    incident_id=incident.id,
                )
            elif event.kind == EventKind.FOLLOW_UP and event.data.get("follow_up_id"):
                named = event.data.get("tracker")
                target = self.policy.settings.default_target if named is None else str(named)
                if target is None or target not in self.policy.settings.targets:
                    continue  # several targets, no default, none named: filed by hand
                await _enqueue_file(
                    session,
                    incident,
                    int(event.data["follow_up_id"]),
                    target,
                    event.at,
                    dedupe=True,
                )


@dataclass(frozen=True)
class FileAnswer:
    """What ``/incident followup file`` did: follow-ups queued, and those already filed."""

    target: str
    vendor: str
    queued: tuple[int, ...]
    filed: tuple[tuple[int, str], ...]  # (follow-up id, ticket key) read back now


class Tickets:
    """Filing by hand: ``/incident followup file <id|all> [tracker:<name>]``."""

    def __init__(self, db: Database, incidents: Incidents, policy: TicketPolicy) -> None:
        self.db = db
        self.incidents = incidents
        self.policy = policy

    def check(self, tracker: str | None) -> str:
        """The target a new follow-up would be filed on (UserError if it cannot be)."""
        return self.policy.target(tracker)

    def describe(self, target: str) -> str:
        return f"`{target}` ({self.policy.vendor(target)})"

    async def file(
        self, key: str, which: int | None, *, tracker: str | None, actor: str
    ) -> FileAnswer:
        target = self.policy.target(tracker)
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            query = select(FollowUp).where(col(FollowUp.incident_id) == incident.id)
            items = list((await session.exec(query.order_by(col(FollowUp.id)))).all())
            if which is not None:
                items = [f for f in items if f.id == which]
                if not items:
                    raise UserError(
                        f"{incident.key} has no follow-up #{which}: "
                        "`/incident timeline` or the incident's page lists them."
                    )
            elif not items:
                raise UserError(
                    f"{incident.key} has no follow-ups yet: add one with `/incident followup`."
                )
            records = {
                r.follow_up_id: r
                for r in (
                    await session.exec(
                        select(ExternalRecord).where(
                            col(ExternalRecord.incident_id) == incident.id,
                            col(ExternalRecord.kind) == KIND,
                            col(ExternalRecord.target) == target,
                        )
                    )
                ).all()
            }
            now = self.incidents.clock.now()
            queued: list[int] = []
            filed: list[tuple[int, str]] = []
            for item in items:
                record = records.get(item.id)
                if record is not None and record.external_id:
                    filed.append((_id(item), str(record.data.get("key") or record.external_id)))
                    if not record.done:
                        await _enqueue_poll(session, incident, record, now, now)
                    continue
                await _enqueue_file(session, incident, _id(item), target, now, dedupe=False)
                queued.append(_id(item))
        return FileAnswer(target, self.policy.vendor(target), tuple(queued), tuple(filed))


class TicketDelivery:
    """The worker's ticket kinds: filing and readback through the port, told on the timeline."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        tracker: Tracker | None,
        policy: TicketPolicy,
        *,
        max_attempts: int = 8,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.tracker = tracker
        self.policy = policy
        self.max_attempts = max_attempts

    def kinds(self) -> dict[str, Deliver]:
        return {FILE: self.file, POLL: self.poll}

    def _port(self) -> Tracker:
        if self.tracker is None:
            raise NoAdapter("no ticket adapter in this process")
        return self.tracker

    def _draft(self, incident: Incident, item: FollowUp) -> TicketDraft:
        scheme = self.incidents.scheme
        level = scheme.get(incident.severity)
        lines = [item.text]
        facts = [f"Follow-up #{item.id} of {incident.key} [{level.name}] {incident.title}"]
        if item.owner:
            facts.append(f"Owner: {item.owner}")
        if incident.service:
            facts.append(f"Service: {incident.service}")
        if incident.channel_name:
            facts.append(f"Slack: #{incident.channel_name}")
        facts.append(f"Recorded by {item.created_by} at {item.created_at:%Y-%m-%d %H:%M} UTC")
        lines.append("\n".join(facts))
        return TicketDraft(
            marker=marker_of(incident, _id(item)),
            title=item.text.strip().splitlines()[0] if item.text.strip() else item.text,
            body="\n\n".join(lines),
            rank=scheme.rank(level.name),
            severity=level.name,
            link=self.policy.page_url(incident.key),
        )

    async def file(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port = self._port()
        target, follow_up_id = str(row.payload["target"]), int(row.payload["follow_up"])
        ref = ref_of(target, follow_up_id)
        async with self.db.transaction(read_only=True) as session:
            item = await session.get(FollowUp, follow_up_id)
            record = await self._record(session, _id(incident), ref)
        if item is None:
            return {"skipped": f"follow-up #{follow_up_id} no longer exists"}
        if record is not None and record.external_id:
            return {"skipped": f"filed already as {record.data.get('key') or record.external_id}"}
        try:
            ticket: TicketRef | None = None
            if row.attempts or row.uncertain:
                ticket = await port.find(target, marker_of(incident, follow_up_id))
            found = ticket is not None
            if ticket is None:
                ticket = await port.file(target, self._draft(incident, item))
        except Refused as error:
            await self._failed(incident, row, follow_up_id, target, f"refused: {error}")
            raise
        except Unavailable as error:
            if row.attempts + 1 >= self.max_attempts:
                what = f"gave up after {row.attempts + 1} attempts: {error}"
                await self._failed(incident, row, follow_up_id, target, what)
            raise
        await self._filed(incident, item, target, ref, ticket, row)
        return {"ticket": ticket.key, "url": ticket.url, "found": found, "target": target}

    async def _filed(
        self,
        incident: Incident,
        item: FollowUp,
        target: str,
        ref: str,
        ticket: TicketRef,
        row: OutboxRow,
    ) -> None:
        vendor = self.policy.vendor(target)
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            now = self.incidents.clock.now()
            record = await self._record(session, _id(locked), ref)
            if record is None:
                record = ExternalRecord(
                    incident_id=_id(locked),
                    ref=ref,
                    kind=KIND,
                    target=target,
                    vendor=vendor,
                    follow_up_id=item.id,
                    created_at=now,
                    updated_at=now,
                )
            record.external_id = ticket.id
            record.url = ticket.url
            record.state = ticket.state[:40]
            record.done = ticket.done
            record.version = ticket.version[:200]
            record.data = {**record.data, "key": ticket.key}
            record.updated_at = now
            session.add(record)
            await session.flush()
            follow_up = await session.get(FollowUp, _id(item), with_for_update=True)
            if follow_up is not None and ticket.url:
                follow_up.url = ticket.url
                session.add(follow_up)
            where = f": {ticket.url}" if ticket.url else ""
            text = f"🎫 Filed {ticket.key} on `{target}` ({vendor}) for follow-up #{item.id}{where}"
            data = {
                "follow_up_id": item.id,
                "target": target,
                "ticket": ticket.key,
                "url": ticket.url,
                "outbox": row.id,
            }
            await self.incidents.record(session, locked, ACTOR, [Change(TICKET_FILED, text, data)])
            await _enqueue_poll(session, locked, record, now + self._every(locked), now)

    async def _failed(
        self, incident: Incident, row: OutboxRow, follow_up_id: int, target: str, error: str
    ) -> None:
        vendor = self.policy.vendor(target)
        text = (
            f"⚠️ Could not file follow-up #{follow_up_id} on `{target}` ({vendor}): {error}. "
            f"`/incident followup file {follow_up_id}` tries again."
        )[:3000]
        data = {"follow_up_id": follow_up_id, "target": target, "error": error[:500]}
        data["outbox"] = row.id
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            await self.incidents.record(session, locked, ACTOR, [Change(TICKET_FAILED, text, data)])

    def _every(self, incident: Incident) -> Any:
        settings = self.policy.settings
        return settings.poll_open if incident.state.is_open else settings.poll_resolved

    async def poll(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port = self._port()
        record_id = int(row.payload["record"])
        async with self.db.transaction(read_only=True) as session:
            record = await session.get(ExternalRecord, record_id)
        if record is None or record.done:
            return {"skipped": "no such ticket" if record is None else "done already"}
        if record.data.get("poll_row") != row.id:
            return {"skipped": "superseded by a later poll"}
        last = TicketRef(
            id=record.external_id,
            key=str(record.data.get("key") or record.external_id),
            url=record.url,
            state=record.state,
            done=record.done,
            version=record.version,
        )
        try:
            now_ref = await port.read(record.target, last)
        except Throttled:
            raise
        except Unavailable as error:
            log.warning("ticket %s on %s not read: %s", last.key, record.target, error)
            await self._checked(incident, record_id, None, row)
            return {"unavailable": str(error)[:300]}
        except Refused as error:
            text = (
                f"⚠️ Could not read {last.key} on `{record.target}` "
                f"({self.policy.vendor(record.target)}): {error}. Its state is no longer read "
                f"back; `/incident followup file {record.follow_up_id}` reads it again."
            )[:3000]
            data = {"follow_up_id": record.follow_up_id, "target": record.target}
            data |= {"ticket": last.key, "error": str(error)[:500], "outbox": row.id}
            async with self.db.transaction() as session:
                locked = await self.incidents.lock(session, _id(incident))
                await self.incidents.record(
                    session, locked, ACTOR, [Change(TICKET_FAILED, text, data)]
                )
            return {"refused": str(error)[:300]}
        await self._checked(incident, record_id, now_ref, row)
        return {"ticket": now_ref.key, "state": now_ref.state, "done": now_ref.done}

    async def _checked(
        self, incident: Incident, record_id: int, ticket: TicketRef | None, row: OutboxRow
    ) -> None:
        """Store what was read; mark the follow-up done, or schedule the next poll."""
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            record = await session.get(ExternalRecord, record_id, with_for_update=True)
            if record is None or record.done or record.data.get("poll_row") != row.id:
                return
            now = self.incidents.clock.now()
            record.checked_at = now
            if ticket is not None and (
                ticket.version != record.version or ticket.state != record.state
            ):
                record.state = ticket.state[:40]
                record.version = ticket.version[:200]
                record.url = ticket.url or record.url
                record.updated_at = now
            session.add(record)
            if ticket is None or not ticket.done:
                await _enqueue_poll(session, locked, record, now + self._every(locked), now)
                return
            record.done = True
            item = (
                await session.get(FollowUp, record.follow_up_id, with_for_update=True)
                if record.follow_up_id is not None
                else None
            )
            if item is None:
                return
            if item.status != "done":
                item.status = "done"
                item.done_at = now
                session.add(item)
            text = (
                f"✅ Follow-up #{item.id} is done: {ticket.key} on `{record.target}` "
                f"({record.vendor}) is {ticket.state or 'done'}"
            )
            data = {
                "follow_up_id": item.id,
                "target": record.target,
                "ticket": ticket.key,
                "state": ticket.state,
                "url": record.url,
            }
            await self.incidents.record(session, locked, ACTOR, [Change(FOLLOWUP_DONE, text, data)])

    @staticmethod
    async def _record(session: AsyncSession, incident_id: int, ref: str) -> ExternalRecord | None:
        query = select(ExternalRecord).where(
            col(ExternalRecord.incident_id) == incident_id, col(ExternalRecord.ref) == ref
        )
        return (await session.exec(query)).first()
