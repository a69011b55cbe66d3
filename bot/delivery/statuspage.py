"""The public status page from chat: previewed, confirmed, written to the outbox, published.

:class:`StatusPages` is the request side. :meth:`~StatusPages.preview` renders exactly what the
public will read, from the runbook's templates (``messages/initial.txt.j2`` to open,
``update.txt.j2`` with the latest update's progress, impact and ETA to update,
``resolution.txt.j2`` to resolve), with the phase, the impact (from the severity's rank) and the
affected components (the target's ``components`` for the incident's service). Opening when a
status incident is open already becomes an update. Only the target's ``allowed`` people may
publish. :meth:`~StatusPages.request` re-renders the preview from its token, refuses if the
incident changed since, and writes the ``statuspage_requested`` event and the outbox row (with a
dedupe key: a double click publishes once) in one transaction.

:class:`StatusPageDelivery` is the worker side: the outbox kind ``statuspage_publish`` through
the status page port; the vendor's incident is kept in ``external_record`` (ref
``statuspage:<target>``) and the outcome told on the timeline (``statuspage_published`` with the
public link, or ``statuspage_failed`` with the reason). A retry whose first attempt may have
gone through looks for the status incident by its marker (the incident key) first, so an
incident has one status incident per target.

:class:`StatusPageListener` posts those outcomes in the channel, refreshes the card, and when the
incident resolves while its status incident is still open, offers (never publishes) the
resolution.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config.settings import Settings, StatusPageTarget
from bot.delivery.outbox import PENDING, Deliver, enqueue
from bot.errors import UserError
from bot.incidents import statuspage as records
from bot.incidents.lifecycle import Change, EventKind, Incidents
from bot.incidents.statuspage import Action, PlanToken, StatusPlan
from bot.ports.errors import NoAdapter, Refused, Unavailable
from bot.ports.statuspage import Impact, Phase, StatusNotice, StatusPage, StatusRef
from bot.store.db import Database
from bot.store.models import ExternalRecord, Incident, OutboxRow, TimelineEvent
from bot.templating import Templates

log = logging.getLogger(__name__)

PUBLISH = "statuspage_publish"
REQUESTED = "statuspage_requested"
PUBLISHED = records.PUBLISHED
FAILED = "statuspage_failed"
ACTOR = "warroom"
MAX_ATTEMPTS = 8

_TEMPLATE: Mapping[Action, str] = {
    "open": "messages/initial.txt.j2",
    "update": "messages/update.txt.j2",
    "resolve": "messages/resolution.txt.j2",
}
_VERB: Mapping[str, str] = {"open": "open", "update": "update", "resolve": "resolve"}
#: The incident's status as the public phases name it.
PHASES: Mapping[str, Phase] = {
    "investigating": "investigating",
    "identified": "identified",
    "mitigating": "identified",
    "monitoring": "monitoring",
    "resolved": "resolved",
}
#: Impact and component status by the severity's rank: the most severe first, the rest last.
IMPACTS: tuple[Impact, ...] = ("critical", "major", "minor")
COMPONENT_STATUS = ("major_outage", "partial_outage", "degraded_performance")
OPERATIONAL = "operational"


def lane(incident: Incident) -> str:
    """The status page has its own lane: open, update and resolve in order, apart from chat."""
    return f"{incident.key}:statuspage"


def impact_of(rank: int) -> Impact:
    return IMPACTS[min(max(rank, 0), len(IMPACTS) - 1)]


def component_status_of(rank: int) -> str:
    return COMPONENT_STATUS[min(max(rank, 0), len(COMPONENT_STATUS) - 1)]


def _who(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else user


class StatusPages:
    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        settings: Settings,
        templates: Templates,
        *,
        clock: Clock,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings
        self.templates = templates
        self.clock = clock

    @property
    def configured(self) -> bool:
        return bool(self.settings.statuspage)

    def groups_named(self) -> set[str]:
        """The Slack user groups any target's ``allowed`` names (the chat resolves them)."""
        return {g for t in self.settings.statuspage.values() for g in t.allowed.groups}

    async def preview(
        self,
        key: str,
        action: Action | None = None,
        target: str | None = None,
        *,
        actor: str,
        groups: Sequence[str] = (),
    ) -> StatusPlan:
        """What ``/incident statuspage`` would publish, for the responder to confirm."""
        self._check_configured()
        incident = await self.incidents.get(key)
        async with self.db.transaction(read_only=True) as session:
            name = self._target(incident, target)
            self._check_allowed(incident, name, actor, groups)
            return await self._plan(
                session,
                incident,
                name,
                action,
                self.clock.now().replace(microsecond=0),
                secrets.token_hex(6),
            )

    async def request(self, token: str, *, actor: str, groups: Sequence[str] = ()) -> bool:
        """Confirm a preview: the event and the outbox row in one transaction; False if this
        very preview was confirmed already (nothing is added)."""
        self._check_configured()
        asked = PlanToken.parse(token)
        dedupe_key = f"statuspage:{asked.nonce}"
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, asked.key)
            seen = select(col(OutboxRow.id)).where(col(OutboxRow.dedupe_key) == dedupe_key)
            if (await session.exec(seen)).first() is not None:
                return False  # this very preview was confirmed already (a double click)
            name = self._target(incident, asked.target)
            self._check_allowed(incident, name, actor, groups)
            plan = await self._plan(session, incident, name, asked.action, asked.at, asked.nonce)
            if plan.action != asked.action or plan.digest != asked.digest:
                raise UserError(
                    f"{incident.key} changed since this preview, so its text is not what would "
                    "be published now: ask for a new preview (`/incident statuspage`)."
                )
            n = plan
            payload = {
                "target": name,
                "action": plan.action,
                "marker": incident.key,
                "name": n.name,
                "body": n.body,
                "phase": n.phase,
                "impact": n.impact,
                "components": dict(n.components),
                "requested_by": actor,
            }
            row = await enqueue(
                session,
                lane=lane(incident),
                kind=PUBLISH,
                payload=payload,
                now=self.clock.now(),
                incident_id=incident.id,
                dedupe_key=dedupe_key,
            )
            if row is None:
                return False
            text = (
                f"📣 {_who(actor)} asked to {_VERB[plan.action]} the status page `{name}` "
                f"({n.phase}, impact {n.impact})"
            )
            data = {**payload, "nonce": asked.nonce}
            await self.incidents.record(session, incident, actor, [Change(REQUESTED, text, data)])
        return True

    def _check_configured(self) -> None:
        if not self.configured:
            raise UserError(
                "The status page is not configured: add a `statuspage:` target "
                "(README, “Status page”)."
            )

    def _target(self, incident: Incident, given: str | None) -> str:
        targets = self.settings.statuspage
        if given:
            if given not in targets:
                known = ", ".join(f"`{n}`" for n in targets)
                raise UserError(f"No status page `{given[:40]}`: use one of {known}.")
            return given
        if len(targets) == 1:
            return next(iter(targets))
        showing = [n for n, t in targets.items() if t.components_for(incident.service)]
        if len(showing) == 1:
            return showing[0]
        known = ", ".join(f"`{n}`" for n in targets)
        raise UserError(
            f"Several status pages could show {incident.key} ({known}): name one, "
            f"e.g. `/incident statuspage open {next(iter(targets))}`."
        )

    def _check_allowed(
        self, incident: Incident, target: str, actor: str, groups: Sequence[str]
    ) -> None:
        allowed = self.settings.statuspage[target].allowed
        roles = {role for role, user in incident.roles.items() if user == actor}
        if not allowed.admits(actor=actor, roles=roles, groups=groups):
            raise UserError(
                f"You may not publish to the status page `{target}`: it is allowed to "
                f"{allowed.describe()}."
            )

    async def _plan(
        self,
        session: AsyncSession,
        incident: Incident,
        target: str,
        action: Action | None,
        at: datetime,
        nonce: str,
    ) -> StatusPlan:
        assert incident.id is not None
        is_open = await _status_incident_open(session, incident, target)
        chosen: Action
        if action is None:
            chosen = ("update" if incident.state.is_open else "resolve") if is_open else "open"
        elif action == "open" and is_open:
            chosen = "update"
        else:
            chosen = action
        if chosen != "open" and not is_open:
            raise UserError(
                f"No status page incident is open for {incident.key} on `{target}`: "
                "open one first (`/incident statuspage open`)."
            )
        if chosen == "open" and not incident.state.is_open:
            raise UserError(f"{incident.key} is resolved: there is nothing to announce.")
        config = self.settings.statuspage[target]
        notice = await self._notice(session, incident, config, chosen, at)
        return StatusPlan(
            key=incident.key,
            target=target,
            action=chosen,
            at=at,
            nonce=nonce,
            name=notice.name,
            body=notice.body,
            phase=notice.phase,
            impact=notice.impact,
            components=dict(notice.components),
            became_update=action == "open" and chosen == "update",
        )

    async def _notice(
        self,
        session: AsyncSession,
        incident: Incident,
        config: StatusPageTarget,
        action: Action,
        at: datetime,
    ) -> StatusNotice:
        scheme = self.incidents.scheme
        level = scheme.get(incident.severity)
        rank = scheme.rank(incident.severity)
        context: dict[str, Any] = {
            "incident": incident,
            "progress": None,
            "impact": None,
            "eta": None,
            "postmortem_date": None,
            "next_update": at + level.update_interval if incident.state.is_open else None,
        }
        if action == "update" and (latest := await _latest_update(session, incident)):
            data = latest.data
            context |= {
                "progress": str(data.get("progress") or "").strip() or None,
                "impact": str(data.get("impact") or "").strip() or None,
                "eta": str(data.get("eta") or "").strip() or None,
            }
            if data.get("next_update") and incident.state.is_open:
                context["next_update"] = datetime.fromisoformat(str(data["next_update"]))
        body = self.templates.render(_TEMPLATE[action], **context)
        phase: Phase = (
            "resolved" if action == "resolve" else PHASES.get(incident.status, "investigating")
        )
        status = OPERATIONAL if phase == "resolved" else component_status_of(rank)
        components = {cid: status for cid in config.components_for(incident.service)}
        return StatusNotice(
            marker=incident.key,
            name=incident.title,
            body=body,
            phase=phase,
            impact=impact_of(rank),
            components=components,
        )


async def _record_of(session: AsyncSession, incident_id: int, target: str) -> ExternalRecord | None:
    query = select(ExternalRecord).where(
        col(ExternalRecord.incident_id) == incident_id,
        col(ExternalRecord.ref) == records.ref(target),
    )
    return (await session.exec(query)).first()


async def _status_incident_open(session: AsyncSession, incident: Incident, target: str) -> bool:
    """A status incident is open on ``target``, or an open for it waits in the outbox."""
    assert incident.id is not None
    record = await _record_of(session, incident.id, target)
    if record is not None and not record.done:
        return True
    query = select(OutboxRow).where(
        col(OutboxRow.incident_id) == incident.id,
        col(OutboxRow.kind) == PUBLISH,
        col(OutboxRow.status) == PENDING,
    )
    pending = (await session.exec(query)).all()
    return any(
        r.payload.get("target") == target and r.payload.get("action") == "open" for r in pending
    )


async def _latest_update(session: AsyncSession, incident: Incident) -> TimelineEvent | None:
    query = (
        select(TimelineEvent)
        .where(col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == "update")
        .order_by(col(TimelineEvent.id).desc())
        .limit(1)
    )
    return (await session.exec(query)).first()


class StatusPageListener:
    """A change listener: outcomes in the channel, the card refreshed, the resolution offered."""

    async def __call__(
        self, session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        now = max(e.at for e in events)
        for event in events:
            if event.kind in (PUBLISHED, FAILED):
                await self._message(session, incident, event.text, now)
                await enqueue(
                    session,
                    lane=incident.key,
                    kind="card",
                    payload={},
                    now=now,
                    incident_id=incident.id,
                    coalesce=True,
                )
            elif event.kind == EventKind.RESOLVED and incident.id is not None:
                for link in await records.status_pages(session, incident.id):
                    if link.resolved:
                        continue
                    text = (
                        f"📣 {incident.key} is resolved, but its status page incident on "
                        f"`{link.target}` still says {link.phase or 'it is open'}. Press "
                        "*Resolve status page* on the card, or `/incident statuspage resolve`, "
                        "to preview the resolution and publish it."
                    )
                    await self._message(session, incident, text, now)

    async def _message(
        self, session: AsyncSession, incident: Incident, text: str, now: datetime
    ) -> None:
        await enqueue(
            session,
            lane=incident.key,
            kind="message",
            payload={"text": text},
            now=now,
            incident_id=incident.id,
        )


class StatusPageDelivery:
    """The worker's status page kind: the port's call, the record, and the timeline."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        port: StatusPage | None,
        *,
        clock: Clock,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.port = port
        self.clock = clock
        self.max_attempts = max_attempts

    def kinds(self) -> dict[str, Deliver]:
        return {PUBLISH: self.publish}

    async def publish(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        if self.port is None:
            raise NoAdapter("no status page adapter in this process")
        port = self.port
        p = row.payload
        target, action = str(p["target"]), str(p["action"])
        notice = StatusNotice(
            marker=str(p["marker"]),
            name=str(p["name"]),
            body=str(p["body"]),
            phase=p["phase"],
            impact=p["impact"],
            components={str(k): str(v) for k, v in dict(p.get("components") or {}).items()},
        )
        assert incident.id is not None
        async with self.db.transaction(read_only=True) as session:
            record = await _record_of(session, incident.id, target)
        open_id = record.external_id if record is not None and not record.done else None
        uncertain = bool(row.uncertain or row.last_error)
        try:
            recovered = False
            found = await port.find(target, notice.marker) if uncertain or not open_id else None
            if found is not None and _carries(found, notice):
                ref, recovered = found, True  # the lost attempt went through
            elif open_id is not None and found is None and uncertain and action == "resolve":
                # Not among the unresolved any more: the lost attempt resolved it.
                ref = StatusRef(open_id, record.url if record else None, "resolved")
                recovered = True
            elif open_id is not None or found is not None:
                ref = await port.update(target, open_id or found.id, notice)  # type: ignore[union-attr]
            elif action == "open":
                ref = await port.open(target, notice)
            else:
                raise Refused(
                    f"statuspage {target}: {incident.key} has no open status incident to {action}"
                )
        except Refused as error:
            await self._failed(row, incident, str(error))
            raise
        except Unavailable as error:
            if row.attempts + 1 >= self.max_attempts:
                await self._failed(row, incident, f"gave up: {error}")
            raise
        await self._published(row, incident, ref, notice, recovered=recovered)
        return {"id": ref.id, "url": ref.url, **({"recovered": True} if recovered else {})}

    async def _published(
        self,
        row: OutboxRow,
        incident: Incident,
        ref: StatusRef,
        notice: StatusNotice,
        *,
        recovered: bool,
    ) -> None:
        p = row.payload
        target, action = str(p["target"]), str(p["action"])
        phase = notice.phase
        now = self.clock.now()
        where = f": {ref.url}" if ref.url else ""
        what = {"open": "opened", "update": "updated", "resolve": "resolved"}.get(action, action)
        text = f"📣 Status page `{target}` {what} ({phase}, impact {notice.impact}){where}"
        data = {
            "target": target,
            "action": action,
            "external_id": ref.id,
            "url": ref.url,
            "phase": phase,
            "impact": notice.impact,
            "components": dict(notice.components),
            "requested_by": p.get("requested_by"),
            "outbox": row.id,
            **({"recovered": True} if recovered else {}),
        }
        assert incident.id is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, incident.id)
            record = await _record_of(session, incident.id, target)
            if record is None:
                record = ExternalRecord(
                    incident_id=incident.id,
                    ref=records.ref(target),
                    kind=records.KIND,
                    target=target,
                    vendor=records.VENDOR,
                    created_at=now,
                    updated_at=now,
                )
            record.external_id = ref.id
            record.url = ref.url or (record.url if record.external_id == ref.id else None)
            record.state = phase
            record.done = phase == "resolved"
            record.updated_at = now
            record.checked_at = now
            record.data = {
                "name": notice.name,
                "impact": notice.impact,
                "components": dict(notice.components),
            }
            session.add(record)
            await self.incidents.record(session, locked, ACTOR, [Change(PUBLISHED, text, data)])

    async def _failed(self, row: OutboxRow, incident: Incident, error: str) -> None:
        p = row.payload
        verb = _VERB.get(str(p["action"]), "publish to")
        text = f"⚠️ Could not {verb} the status page `{p['target']}`: {error}"[:3000]
        data = {"target": p["target"], "action": p["action"], "error": error[:500]}
        assert incident.id is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, incident.id)
            await self.incidents.record(session, locked, ACTOR, [Change(FAILED, text, data)])


def _carries(found: StatusRef, notice: StatusNotice) -> bool:
    """The status incident found already shows this notice (its latest message and phase)."""
    return found.phase == notice.phase and found.last_body == notice.body
