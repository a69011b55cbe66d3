"""The post-mortem exported where the organisation keeps its reviews (``export.targets``).

:class:`Exports` is the request side (``/incident postmortem export [target]``, ``warroom
postmortem KEY --export TARGET``): for each target, one ``postmortem_export`` outbox row on the
target's own lane and the ``postmortem_export_requested`` event, in one transaction. A second
request while a row is still waiting adds nothing: the row renders the draft when it is sent.

:class:`ExportDelivery` is the worker side: it renders the current draft (through ``render``,
which the handlers compose from :mod:`bot.drafts`), then creates or updates the document through
the export port. The :class:`~bot.store.models.ExternalRecord` ``export:<target>`` holds the
vendor's id, URL and version, so a re-export updates the same page; with no record yet (the
first export, or one whose answer was lost) the port is asked to :meth:`~Exporter.find` it by
the incident's key first. The outcome goes on the timeline (``postmortem_exported`` with the
URL, or ``export_failed``) and is posted in the incident's channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config.export import VENDORS, fill
from bot.config.settings import Settings
from bot.delivery.outbox import Deliver, enqueue
from bot.errors import UserError
from bot.incidents.lifecycle import Change, Incidents
from bot.ports.errors import NoAdapter, Refused, Throttled, Unavailable
from bot.ports.export import ExportDocument, Exporter, ExportRef
from bot.store.db import Database
from bot.store.models import ExternalRecord, Incident, OutboxRow

log = logging.getLogger(__name__)

EXPORT = "postmortem_export"
REQUESTED = "postmortem_export_requested"
EXPORTED = "postmortem_exported"
FAILED = "export_failed"
ACTOR = "warroom"
#: Confluence allows 255 characters in a title; a commit subject should stay short too.
MAX_TITLE = 200

#: Renders the current draft of incident ``key`` with ``title`` (composed by the handlers).
Render = Callable[[str, str], Awaitable[ExportDocument]]


def lane(key: str, target: str) -> str:
    """Each target has its own lane: a slow wiki never holds up the chat, nor the other."""
    return f"{key}:export:{target}"


def ref_of(target: str) -> str:
    return f"export:{target}"


def _who(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else user


def _vendor(settings: Settings, target: str) -> str:
    config = settings.export.targets.get(target)
    return VENDORS.get(config.kind, config.kind) if config is not None else "?"


async def exported(session: AsyncSession, incident_id: int) -> list[ExternalRecord]:
    """The incident's exported documents, by target (the manager page lists them)."""
    query = select(ExternalRecord).where(
        col(ExternalRecord.incident_id) == incident_id, col(ExternalRecord.kind) == "export"
    )
    return list((await session.exec(query.order_by(col(ExternalRecord.target)))).all())


class Exports:
    def __init__(
        self, db: Database, incidents: Incidents, settings: Settings, *, clock: Clock
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings
        self.clock = clock

    @property
    def targets(self) -> list[str]:
        return list(self.settings.export.targets)

    def _chosen(self, target: str | None) -> list[str]:
        known = self.targets
        if not known:
            raise UserError(
                "Post-mortem export is not configured: add a target under `export.targets` "
                "(README, “Post-mortem export”)."
            )
        if target is None:
            return known
        if target not in known:
            listed = ", ".join(f"`{t}`" for t in known)
            raise UserError(f"No export target `{target[:40]}`: the targets are {listed}.")
        return [target]

    async def request(self, key: str, target: str | None, *, actor: str) -> list[str]:
        """Queue the export of ``key``'s draft to ``target`` (every target when None); the
        targets a new row was added for (a waiting row already renders the latest draft)."""
        chosen = self._chosen(target)
        queued: list[str] = []
        async with self.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            now = self.clock.now()
            changes = []
            for name in chosen:
                config = self.settings.export.targets[name]
                title = fill(config.title, key=incident.key, title=incident.title)[:MAX_TITLE]
                payload = {"target": name, "title": title.strip(), "actor": actor}
                row = await enqueue(
                    session,
                    lane=lane(incident.key, name),
                    kind=EXPORT,
                    payload=payload,
                    now=now,
                    incident_id=incident.id,
                    coalesce=True,
                )
                if row is None:
                    continue
                queued.append(name)
                text = (
                    f"📤 {_who(actor)} asked to export the post-mortem to "
                    f"{_vendor(self.settings, name)} `{name}`"
                )
                changes.append(Change(REQUESTED, text, {"target": name}))
            if changes:
                await self.incidents.record(session, incident, actor, changes)
        return queued

    async def outcomes(self, key: str, targets: list[str]) -> dict[str, str | None]:
        """For each of ``targets``, the text of the outcome of its last request (exported or
        failed), or None while its row still waits (a retry, or a server's worker)."""
        events = await self.incidents.timeline(key)
        found: dict[str, str | None] = {}
        for event in events:
            target = event.data.get("target")
            if target not in targets:
                continue
            if event.kind == REQUESTED:
                found[target] = None
            elif event.kind in (EXPORTED, FAILED):
                found[target] = event.text
        return {t: found.get(t) for t in targets}


class ExportDelivery:
    """The worker's ``postmortem_export`` kind: render, export, record, tell the channel."""

    def __init__(
        self,
        db: Database,
        incidents: Incidents,
        settings: Settings,
        exporter: Exporter | None,
        render: Render,
        *,
        max_attempts: int = 8,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings
        self.exporter = exporter
        self.render = render
        self.max_attempts = max_attempts

    def kinds(self) -> dict[str, Deliver]:
        return {EXPORT: self.export}

    async def _existing(self, incident: Incident, target: str) -> ExternalRecord | None:
        async with self.db.transaction(read_only=True) as session:
            query = select(ExternalRecord).where(
                col(ExternalRecord.incident_id) == incident.id,
                col(ExternalRecord.ref) == ref_of(target),
            )
            return (await session.exec(query)).first()

    async def export(self, row: OutboxRow, incident: Incident) -> dict[str, Any]:
        if self.exporter is None:
            raise NoAdapter("no export adapter in this process")
        port = self.exporter
        p = row.payload
        target = str(p["target"])
        if target not in self.settings.export.targets:
            error = f"export target `{target}` is no longer configured"
            await self._failed(row, incident, error)
            raise Refused(error)
        document = await self.render(incident.key, str(p["title"]))
        record = await self._existing(incident, target)
        try:
            existing = (
                ExportRef(record.external_id, record.url, record.version)
                if record is not None
                else await port.find(target, document)
            )
            ref = await port.export(target, document, existing)
        except Refused as error:
            await self._failed(row, incident, f"refused: {error}")
            raise
        except (Unavailable, Throttled) as error:
            if row.attempts + 1 >= self.max_attempts:
                await self._failed(row, incident, f"gave up: {error}")
            raise
        created = existing is None
        await self._exported(row, incident, target, ref, created=created)
        return {"id": ref.id, "url": ref.url, "version": ref.version, "created": created}

    async def _exported(
        self, row: OutboxRow, incident: Incident, target: str, ref: ExportRef, *, created: bool
    ) -> None:
        vendor = _vendor(self.settings, target)
        config = self.settings.export.targets[target]
        how = "exported to" if created else "updated on"
        where = f" {ref.url}" if ref.url else f" (`{ref.id}`)"
        version = f", version {ref.version}" if config.kind == "confluence" and ref.version else ""
        text = f"📄 Post-mortem {how} {vendor} `{target}`:{where}{version}"
        data = {
            "target": target,
            "vendor": config.kind,
            "id": ref.id,
            "url": ref.url,
            "version": ref.version,
            "created": created,
            "outbox": row.id,
        }
        assert incident.id is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, incident.id)
            now = self.incidents.clock.now()
            query = select(ExternalRecord).where(
                col(ExternalRecord.incident_id) == locked.id,
                col(ExternalRecord.ref) == ref_of(target),
            )
            record = (await session.exec(query)).first() or ExternalRecord(
                incident_id=incident.id,
                ref=ref_of(target),
                kind="export",
                target=target,
                vendor=config.kind,
                created_at=now,
                updated_at=now,
            )
            record.external_id = ref.id
            record.url = ref.url
            record.version = ref.version
            record.state = "exported"
            record.done = True
            record.updated_at = now
            record.checked_at = now
            record.data = {"title": row.payload.get("title", "")}
            session.add(record)
            await self._tell(session, locked, text, now)
            await self.incidents.record(session, locked, ACTOR, [Change(EXPORTED, text, data)])

    async def _failed(self, row: OutboxRow, incident: Incident, error: str) -> None:
        target = str(row.payload["target"])
        vendor = _vendor(self.settings, target)
        text = f"⚠️ Could not export the post-mortem to {vendor} `{target}`: {error}"[:3000]
        data = {"target": target, "error": error[:500], "outbox": row.id}
        assert incident.id is not None
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, incident.id)
            await self._tell(session, locked, text, self.incidents.clock.now())
            await self.incidents.record(session, locked, ACTOR, [Change(FAILED, text, data)])

    async def _tell(
        self, session: AsyncSession, incident: Incident, text: str, now: datetime
    ) -> None:
        """The outcome in the incident's channel (none yet: the timeline has it)."""
        if incident.channel_id:
            await enqueue(
                session,
                lane=incident.key,
                kind="message",
                payload={"text": text},
                now=now,
                incident_id=incident.id,
            )
