"""Status updates (the runbook's Update template) and the reminders to post them.

An update is a timeline event of kind ``update`` holding the text as it was sent; the
notifier posts it to the incident channel and the broadcast channel. Each severity has
an update interval (P1 every 30 min, P2 hourly …); when the last update (or the
declaration) is older, a reminder row is written with a key unique to that period, so
however many replicas run the scheduler, one reminder is posted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, func, select

from bot.clock import Clock
from bot.delivery.outbox import enqueue
from bot.incidents.lifecycle import Change, Incidents
from bot.store.db import Database
from bot.store.models import Incident, Status, TimelineEvent
from bot.templating import Templates

UPDATE = "update"
SNOOZE = "snooze"


class Updates:
    def __init__(self, incidents: Incidents, templates: Templates, clock: Clock) -> None:
        self.incidents = incidents
        self.templates = templates
        self.clock = clock

    async def post(
        self,
        key: str,
        *,
        actor: str,
        status: str | None = None,
        progress: str = "",
        impact: str = "",
        eta: str = "",
        next_update_in: timedelta | None = None,
    ) -> Incident:
        """Record an update (and the status/impact it states) and have it posted."""
        async with self.incidents.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            if status and status != incident.status:
                await self.incidents.set_status(incident, status, actor=actor, session=session)
            if impact.strip() and impact.strip() != incident.impact:
                incident.impact = impact.strip()[:3000]
            interval = (
                next_update_in or self.incidents.scheme.get(incident.severity).update_interval
            )
            next_update = self.clock.now() + interval
            text = self.templates.render(
                "messages/update.txt.j2",
                incident=incident,
                progress=progress.strip() or None,
                impact=impact.strip() or None,
                eta=eta.strip() or None,
                next_update=next_update,
            )
            data = {
                "status": incident.status,
                "progress": progress,
                "impact": impact,
                "eta": eta,
                "next_update": next_update.isoformat(),
            }
            await self.incidents.record(session, incident, actor, [Change(UPDATE, text, data)])
        return incident

    async def snooze(self, key: str, *, actor: str, minutes: int) -> Incident:
        if not 1 <= minutes <= 24 * 60:
            raise ValueError("snooze between 1 minute and a day")
        until = self.clock.now() + timedelta(minutes=minutes)
        async with self.incidents.db.transaction() as session:
            incident = await self.incidents.lock_key(session, key)
            text = f"update reminders snoozed for {minutes} min"
            change = Change(SNOOZE, text, {"until": until.isoformat()})
            await self.incidents.record(session, incident, actor, [change])
        return incident


async def schedule_reminders(db: Database, incidents: Incidents, now: datetime) -> list[str]:
    """Write a reminder row for each open incident whose update is overdue; return their keys.

    Read in three set-based queries without the write lock (a storm leaves thousands of
    incidents open: a query per incident under SQLite's one writer held it for tens of
    seconds), then only the overdue ones are written, their rows deduplicated by period.
    """
    open_ = col(Incident.status) != Status.RESOLVED.value
    async with db.transaction(read_only=True) as session:
        rows = (
            await session.exec(
                select(Incident.id, Incident.key, Incident.severity, Incident.declared_at).where(
                    open_
                )
            )
        ).all()
        if not rows:
            return []
        last_of = dict(
            (
                await session.exec(
                    select(TimelineEvent.incident_id, func.max(TimelineEvent.at))
                    .join(Incident, col(Incident.id) == col(TimelineEvent.incident_id))
                    .where(open_, col(TimelineEvent.kind).in_([UPDATE, "declared", "reopened"]))
                    .group_by(col(TimelineEvent.incident_id))
                )
            ).all()
        )
        snoozes = (
            await session.exec(
                select(TimelineEvent.incident_id, TimelineEvent.data)
                .join(Incident, col(Incident.id) == col(TimelineEvent.incident_id))
                .where(open_, col(TimelineEvent.kind) == SNOOZE)
            )
        ).all()
    snoozed: dict[int, datetime] = {}
    for snoozed_id, data in snoozes:
        asked = datetime.fromisoformat(data["until"])
        assert snoozed_id is not None
        snoozed[snoozed_id] = max(asked, snoozed.get(snoozed_id, asked))
    overdue_rows = []
    for incident_id, key, severity, declared_at in rows:
        assert incident_id is not None
        last = last_of.get(incident_id) or declared_at
        until = snoozed.get(incident_id)
        interval = incidents.scheme.get(severity).update_interval
        if now - last < interval or (until is not None and until > now):
            continue
        overdue_rows.append((incident_id, key, last, until))
    due: list[str] = []
    if not overdue_rows:
        return due
    async with db.transaction() as session:
        for incident_id, key, last, until in overdue_rows:
            period = f"{int(last.timestamp())}:{int(until.timestamp()) if until else 0}"
            overdue = int((now - last).total_seconds() // 60)
            row = await enqueue(
                session,
                lane=key,
                kind="reminder",
                payload={
                    "overdue_min": overdue,
                    "text": f"{key} has had no update for {overdue} min",
                },
                now=now,
                incident_id=incident_id,
                dedupe_key=f"reminder:{key}:{period}",
            )
            if row is not None:
                due.append(key)
    return due
