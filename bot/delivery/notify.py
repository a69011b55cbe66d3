"""From incident changes to outbox rows: what the channel must be told, decided in the change's
own transaction.

Messages built from the runbook's templates (initial, update, resolution) are rendered
now and kept as sent; the card, topic, bookmarks and announcements are rendered by the
delivery worker from the incident's state when it sends them, and pending card and
topic updates coalesce into one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config.settings import RoutingRule
from bot.delivery.outbox import enqueue, enqueue_coalesced
from bot.delivery.silences import on_resolved as silences_on_resolved
from bot.delivery.tickets import FOLLOWUP_DONE, TICKET_FILED
from bot.incidents import silences
from bot.incidents.lifecycle import EventKind
from bot.incidents.severity import SeverityScheme
from bot.store.models import Incident, TimelineEvent
from bot.templating import Templates

BROADCAST = "broadcast"
SUMMARY_EVERY = timedelta(minutes=1)
#: A card refreshed for alerts alone is refreshed at most this often (per process): during
#: a storm every batch of alerts would otherwise re-render and re-send every card.
CARD_REFRESH_EVERY = timedelta(seconds=2)

#: Timeline kinds that change what the card or the topic shows.
_CARD_KINDS = {
    EventKind.ACKNOWLEDGED,
    EventKind.SEVERITY,
    EventKind.STATUS,
    EventKind.ROLE,
    EventKind.EDITED,
    EventKind.REOPENED,
    EventKind.RESOLVED,
    "alert",
    "step_run",  # a graded result may suggest a mitigation (bot.runbooks.suggest)
    "resolve_ready",  # quiet in monitoring: the card offers Resolve now (bot.delivery.quiet)
    silences.SILENCED,
    silences.UNSILENCED,
    EventKind.FOLLOW_UP,  # the card lists follow-ups (bot.incidents.followups)
    TICKET_FILED,  # a follow-up's ticket link arrived
    FOLLOWUP_DONE,  # its ticket is done, and so is the follow-up
}
#: Silence outcomes, told in the channel as they are on the timeline.
_SILENCE_NEWS = {silences.SILENCED, silences.UNSILENCED, silences.FAILED}
_TOPIC_KINDS = {
    EventKind.SEVERITY,
    EventKind.STATUS,
    EventKind.ROLE,
    EventKind.REOPENED,
    EventKind.RESOLVED,
}


class Notifier:
    """A :data:`~bot.incidents.lifecycle.ChangeListener` writing the outbox rows of each change."""

    def __init__(
        self,
        *,
        templates: Templates,
        scheme: SeverityScheme,
        routing: Sequence[RoutingRule] = (),
        broadcast: str | None = None,
        auto_diagnose: bool = False,
    ) -> None:
        self.auto_diagnose = auto_diagnose
        self._card_due: dict[str, datetime] = {}  # lane → when its last alert refresh was due
        self.templates = templates
        self.scheme = scheme
        self.routing = list(routing)
        self.broadcast = broadcast

    async def __call__(
        self, session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        kinds = {e.kind for e in events}
        now = max(e.at for e in events)
        if EventKind.DECLARED in kinds:
            await self._opened(session, incident, now)
            return
        if kinds & _TOPIC_KINDS:
            await self._add(session, incident, "topic", {}, now, coalesce=True)
        if kinds & _CARD_KINDS:
            await self._add(session, incident, "card", {}, now, coalesce=True)
        for event in events:
            if event.kind == "alert" and event.data.get("status") == "resolved":
                await self._alert_summary(session, incident, now)
            elif event.kind == EventKind.RESOLVED:
                text = self._render("resolution", incident, now)
                await self._add(session, incident, "message", {"text": text}, now)
                if self.broadcast:
                    await self._add(
                        session, incident, "announce", {"event": "resolved"}, now, lane=BROADCAST
                    )
                if notice := await silences_on_resolved(session, incident, now):
                    await self._add(session, incident, "message", {"text": notice}, now)
            elif event.kind in _SILENCE_NEWS:
                await self._add(session, incident, "message", {"text": event.text}, now)
            elif event.kind == EventKind.REOPENED:
                text = f"♻️ {incident.key} reopened: {event.text}"
                await self._add(session, incident, "message", {"text": text}, now)
            elif event.kind == "update":
                await self._add(session, incident, "message", {"text": event.text}, now)
                if self.broadcast:
                    await self._add(
                        session, incident, "message", {"text": event.text}, now, lane=BROADCAST
                    )

    async def many(
        self, session: AsyncSession, items: Sequence[tuple[Incident, Sequence[TimelineEvent]]]
    ) -> None:
        """Many incidents' events at once: those that only add or update firing alerts need
        just a card refresh, coalesced for all of them in two statements, and due at most
        every ``CARD_REFRESH_EVERY`` per card; the rest as above."""
        cards: dict[str, tuple[int | None, datetime]] = {}
        now = max((e.at for _, events in items for e in events), default=None)
        for incident, events in items:
            if now is not None and events and all(_card_only(e) for e in events):
                last = self._card_due.get(incident.key)
                due = now if last is None else max(now, last + CARD_REFRESH_EVERY)
                cards[incident.key] = (incident.id, due)
            else:
                await self(session, incident, events)
        if not cards or now is None:
            return
        added = await enqueue_coalesced(session, kind="card", lanes=cards, now=now)
        if len(self._card_due) > 10_000:
            self._card_due.clear()  # only spacing is lost
        for lane in added:
            self._card_due[lane] = cards[lane][1]

    async def _opened(self, session: AsyncSession, incident: Incident, now: datetime) -> None:
        users: list[str] = []
        groups: list[str] = []
        emails: list[str] = []
        for rule in self.routing:
            if rule.matches(service=incident.service, severity=incident.severity):
                users += rule.users
                groups += rule.usergroups
                emails += rule.emails
        commander = incident.roles.get("commander")
        if commander and commander[:1] in ("U", "W"):
            users.append(commander)
        await self._add(session, incident, "open_channel", {}, now)
        if users or groups or emails:
            invite = {
                "users": _unique(users),
                "usergroups": _unique(groups),
                "emails": _unique(emails),
            }
            await self._add(session, incident, "invite", invite, now)
        await self._add(session, incident, "topic", {}, now)
        await self._add(session, incident, "card", {"pin": True}, now)
        await self._add(session, incident, "bookmarks", {}, now)
        text = self._render("initial", incident, now)
        await self._add(session, incident, "message", {"text": text}, now)
        if self.auto_diagnose:
            await self._add(session, incident, "diagnose", {}, now)
        if self.broadcast:
            await self._add(
                session, incident, "announce", {"event": "declared"}, now, lane=BROADCAST
            )

    async def _alert_summary(
        self, session: AsyncSession, incident: Incident, now: datetime
    ) -> None:
        """Resolved alerts are summarised in the card's thread, at most once a minute."""
        bucket = int(now.timestamp() // SUMMARY_EVERY.total_seconds())
        due = datetime.fromtimestamp((bucket + 1) * SUMMARY_EVERY.total_seconds(), tz=now.tzinfo)
        await self._add(
            session,
            incident,
            "alert_summary",
            {"since": now.isoformat()},
            now,
            dedupe_key=f"alert_summary:{incident.key}:{bucket}",
            not_before=due,
        )

    def _render(self, template: str, incident: Incident, now: datetime) -> str:
        level = self.scheme.get(incident.severity)
        return self.templates.render(
            f"messages/{template}.txt.j2",
            incident=incident,
            next_update=now + level.update_interval if incident.state.is_open else None,
            progress=None,
            impact=None,
            eta=None,
            postmortem_date=None,
        )

    async def _add(
        self,
        session: AsyncSession,
        incident: Incident,
        kind: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        lane: str | None = None,
        coalesce: bool = False,
        dedupe_key: str | None = None,
        not_before: datetime | None = None,
    ) -> None:
        await enqueue(
            session,
            lane=lane or incident.key,
            kind=kind,
            payload=payload,
            now=now,
            incident_id=incident.id,
            coalesce=coalesce,
            dedupe_key=dedupe_key,
            not_before=not_before,
        )


def _card_only(event: TimelineEvent) -> bool:
    """An alert event that changes only the card (a resolved alert also gets a summary)."""
    return event.kind == "alert" and event.data.get("status") != "resolved"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
