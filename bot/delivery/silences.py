"""Silences from chat: previewed, confirmed, written to the outbox, created by the worker.

:class:`Silences` is the request side. :meth:`~Silences.preview` builds a
:class:`~bot.incidents.silences.SilencePlan` from the incident's Alertmanager alerts (their
common labels) and the matchers a responder named; :meth:`~Silences.request` writes the
``silence_requested`` event and the outbox row that creates it, in one transaction, with a
dedupe key (a double click is one silence); :meth:`~Silences.unsilence` does the same to
expire. :func:`on_resolved` runs in the resolution's transaction: it expires the incident's
``until-resolved`` silences and reminds of the others.

:class:`SilenceDelivery` is the worker side: the outbox kinds ``silence_create`` and
``silence_expire``, carried out through the silencing port and told on the timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config.settings import Settings
from bot.delivery.outbox import Deliver, enqueue
from bot.errors import UserError
from bot.incidents import silences as s
from bot.incidents.lifecycle import Change, Incidents
from bot.ports.silencing import Refused, Silencer, Unavailable
from bot.store.db import Database
from bot.store.models import Alert, Incident, OutboxRow

log = logging.getLogger(__name__)

CREATE = "silence_create"
EXPIRE = "silence_expire"
ACTOR = "warroom"


class NoSilencer(Exception):
    """This process has no silencing adapter (a CLI run): the server's worker delivers it."""


def lane(incident: Incident) -> str:
    """Silences have their own lane: a slow chat never holds them up, nor they the chat."""
    return f"{incident.key}:silences"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _who(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else user


class Silences:
    def __init__(
        self, db: Database, incidents: Incidents, settings: Settings, *, clock: Clock
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings
        self.clock = clock

    @property
    def configured(self) -> bool:
        return bool(self.settings.alertmanager)

    def _page(self, key: str) -> str | None:
        base = self.settings.server.public_url
        return f"{base.rstrip('/')}/incidents/{key}" if base else None

    async def preview(
        self,
        key: str,
        duration: str,
        given: Sequence[tuple[str, str, str]] = (),
        *,
        nonce: str | None = None,
    ) -> s.SilencePlan:
        """What ``/incident silence`` would create: shown to the responder before confirming."""
        if not self.configured:
            raise UserError(
                "Silences are not configured: add an `alertmanager:` target "
                "(README, “Alertmanager silences”)."
            )
        matchers = [s.Matcher(name, value, op) for name, op, value in given]
        incident = await self.incidents.get(key)
        if not incident.state.is_open:
            raise UserError(f"{incident.key} is resolved: there is nothing to silence.")
        async with self.db.transaction(read_only=True) as session:
            query = select(Alert).where(
                col(Alert.incident_id) == incident.id, col(Alert.source) == "alertmanager"
            )
            alerts = list((await session.exec(query)).all())
        firing = [a for a in alerts if a.status == "firing"] or alerts
        if not firing and not matchers:
            raise UserError(
                f"{incident.key} has no Alertmanager alerts: name what to silence, e.g. "
                '`/incident silence 1h alertname="HighLatency"`.'
            )
        endpoints = sorted({a.endpoint for a in firing})
        targets = {self.settings.silence_target(e) for e in endpoints} or {
            self.settings.silence_target("")
        }
        if None in targets:
            names = ", ".join(f"`webhooks.{e}.alertmanager`" for e in endpoints) or "a target"
            raise UserError(f"No Alertmanager target for {incident.key}'s alerts: set {names}.")
        if len(targets) > 1:
            raise UserError(
                f"{incident.key}'s alerts come from several Alertmanagers "
                f"({', '.join(sorted(str(t) for t in targets))}): "
                "silence each from its own incident."
            )
        target = str(targets.pop())
        page = self._page(incident.key)
        comment = f"warroom {incident.key}: {incident.title[:120]}" + (f" {page}" if page else "")
        return s.SilencePlan(
            key=incident.key,
            target=target,
            duration=s.duration_of(duration),
            matchers=s.merge_matchers(s.common_labels(firing), matchers),
            comment=comment,
            nonce=nonce or s.SilencePlan.new_nonce(),
        )

    async def request(self, plan: s.SilencePlan, *, actor: str) -> bool:
        """Confirm ``plan``: the event and the outbox row in one transaction; False if a
        request of this very preview was made already (nothing is added)."""
        if plan.target not in self.settings.alertmanager:
            raise UserError(f"No alertmanager target {plan.target!r} is configured.")
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, plan.key)
            if not incident.state.is_open:
                raise UserError(f"{incident.key} is resolved: there is nothing to silence.")
            now = self.clock.now()
            ends = plan.ends(now)
            matchers = [str(m) for m in plan.matchers]
            payload = {
                "target": plan.target,
                "matchers": [[m.name, m.op, m.value] for m in plan.matchers],
                "starts": now.isoformat(),
                "ends": ends.isoformat(),
                "created_by": actor,
                "comment": plan.full_comment(),
                "marker": plan.marker,
                "until_resolved": plan.until_resolved,
                "duration": plan.duration,
            }
            row = await enqueue(
                session,
                lane=lane(incident),
                kind=CREATE,
                payload=payload,
                now=now,
                incident_id=incident.id,
                dedupe_key=f"silence:{plan.nonce}:{plan.duration}",
            )
            if row is None:
                return False
            text = (
                f"🔕 {_who(actor)} asked to silence {', '.join(matchers)} on Alertmanager "
                f"`{plan.target}` for {plan.duration}"
            )
            data = {**payload, "matchers": matchers, "nonce": plan.nonce}
            await self.incidents.record(session, incident, actor, [Change(s.REQUESTED, text, data)])
        return True

    async def unsilence(self, key: str, *, actor: str, silence_id: str | None = None) -> list[str]:
        """Expire the incident's open silences (or the one named); return their ids."""
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            assert incident.id is not None
            now = self.clock.now()
            found = await s.open_silences(session, incident.id, now=now)
            if silence_id:
                found = [o for o in found if o.silence_id.lower().startswith(silence_id.lower())]
            if not found:
                what = f"silence `{silence_id[:40]}`" if silence_id else "silence"
                raise UserError(f"{incident.key} has no open {what}.")
            changes, ids = [], []
            for silence in found:
                if await _expire_row(session, incident, silence, now, reason=f"by {actor}"):
                    ids.append(silence.silence_id)
                    changes.append(
                        Change(
                            s.UNSILENCE_REQUESTED,
                            f"🔔 {_who(actor)} asked to expire silence `{silence.silence_id}`",
                            {"silence_id": silence.silence_id, "target": silence.target},
                        )
                    )
            if not changes:
                raise UserError(f"{incident.key}'s silences are being expired already.")
            await self.incidents.record(session, incident, actor, changes)
        return ids


async def _expire_row(
    session: AsyncSession, incident: Incident, silence: s.OpenSilence, now: datetime, *, reason: str
) -> bool:
    row = await enqueue(
        session,
        lane=lane(incident),
        kind=EXPIRE,
        payload={"target": silence.target, "silence_id": silence.silence_id, "reason": reason},
        now=now,
        incident_id=incident.id,
        dedupe_key=f"unsilence:{silence.target}:{silence.silence_id}"[:200],
    )
    return row is not None


async def on_resolved(session: AsyncSession, incident: Incident, now: datetime) -> str | None:
    """In the resolution's transaction: expire ``until-resolved`` silences; the text that
    reminds of the others (None when there are none)."""
    assert incident.id is not None
    left = []
    for silence in await s.open_silences(session, incident.id, now=now):
        if silence.until_resolved:
            await _expire_row(session, incident, silence, now, reason="the incident was resolved")
        else:
            left.append(silence)
    if not left:
        return None
    items = ", ".join(f"`{o.silence_id}` until {_when(o.ends)}" for o in left)
    return (
        f"🔕 {incident.key} is resolved but {len(left)} silence(s) still hold: {items}. "
        "Press *Unsilence* on the card, or `/incident unsilence`, to let its alerts notify again."
    )


class SilenceDelivery:
    """The worker's silence kinds: the port's call, then its outcome on the timeline."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        silencer: Silencer | None,
        *,
        max_attempts: int,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.silencer = silencer
        self.max_attempts = max_attempts

    def kinds(self) -> dict[str, Deliver]:
        return {CREATE: self.create, EXPIRE: self.expire}

    def _port(self) -> Silencer:
        if self.silencer is None:
            raise NoSilencer("no silencing adapter in this process")
        return self.silencer

    async def create(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port = self._port()
        p = row.payload
        target = str(p["target"])
        if row.uncertain or row.last_error:
            found = await port.find(target, str(p["marker"]))
            if found is not None:
                log.info("outbox row %s: silence %s already created", row.id, found.id)
                return await self._created(row, incident, found.id, recovered=True)
        matchers = [s.Matcher(n, v, o) for n, o, v in p["matchers"]]
        try:
            ref = await port.create(
                target,
                matchers,
                starts=datetime.fromisoformat(p["starts"]),
                ends=datetime.fromisoformat(p["ends"]),
                created_by=str(p["created_by"]),
                comment=str(p["comment"]),
            )
        except Refused as error:
            await self._failed(row, incident, f"refused: {error}", "create")
            raise
        except Unavailable as error:
            if row.attempts + 1 >= self.max_attempts:
                await self._failed(row, incident, f"gave up: {error}", "create")
            raise
        return await self._created(row, incident, ref.id)

    async def _created(
        self, row: OutboxRow, incident: Incident, silence_id: str, *, recovered: bool = False
    ) -> dict[str, Any]:
        p = row.payload
        matchers = [str(s.Matcher(n, v, o)) for n, o, v in p["matchers"]]
        ends = datetime.fromisoformat(p["ends"])
        until = " (expired when the incident is resolved)" if p.get("until_resolved") else ""
        text = (
            f"🔕 Silenced on Alertmanager `{p['target']}` until {_when(ends)}{until}, "
            f"silence `{silence_id}`, for {_who(str(p['created_by']))}: {', '.join(matchers)}"
        )
        data = {
            "silence_id": silence_id,
            "target": p["target"],
            "ends": p["ends"],
            "until_resolved": bool(p.get("until_resolved")),
            "created_by": p["created_by"],
            "matchers": matchers,
            "outbox": row.id,
        }
        await self._record(incident, [Change(s.SILENCED, text, data)])
        return {"silence_id": silence_id, **({"recovered": True} if recovered else {})}

    async def expire(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        port = self._port()
        p = row.payload
        silence_id, target = str(p["silence_id"]), str(p["target"])
        try:
            expired = await port.expire(target, silence_id)
        except Refused as error:
            await self._failed(row, incident, f"refused: {error}", "expire", silence_id)
            raise
        except Unavailable as error:
            if row.attempts + 1 >= self.max_attempts:
                await self._failed(row, incident, f"gave up: {error}", "expire", silence_id)
            raise
        how = "expired" if expired else "had already ended"
        text = f"🔔 Silence `{silence_id}` {how} ({p.get('reason', '')}): its alerts notify again"
        data = {"silence_id": silence_id, "target": target, "already_ended": not expired}
        await self._record(incident, [Change(s.UNSILENCED, text, data)])
        return {"silence_id": silence_id, "expired": expired}

    async def _failed(
        self,
        row: OutboxRow,
        incident: Incident,
        error: str,
        action: str,
        silence_id: str | None = None,
    ) -> None:
        what = "create the silence" if action == "create" else f"expire silence `{silence_id}`"
        text = f"⚠️ Could not {what} on Alertmanager `{row.payload['target']}`: {error}"[:3000]
        data = {"action": action, "error": error[:500], "silence_id": silence_id}
        await self._record(incident, [Change(s.FAILED, text, data)])

    async def _record(self, incident: Incident, changes: list[Change]) -> None:
        assert incident.id is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, incident.id)
            await self.incidents.record(session, locked, ACTOR, changes)
