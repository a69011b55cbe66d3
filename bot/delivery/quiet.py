"""Ready to resolve: an incident in monitoring whose alerts have all resolved and stayed quiet.

When an incident has been in ``monitoring`` with no firing alert for its severity's quiet
period (``incidents.resolve_quiet``, per severity ``incidents.resolve_quiet_by_severity``),
:func:`schedule_resolve_offers` records a ``resolve_ready`` event (the card then offers
*Resolve now*, the prefilled resolve form) and writes a ``resolve_reminder`` outbox row due
one quiet period later. The worker posts the reminder only if the incident is still in
monitoring and still quiet. Both are keyed by the start of the quiet (the later of entering
monitoring and the last alert's resolution) and written under the incident's row lock, so
however many replicas schedule, and across restarts, each happens once per quiet spell.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.outbox import enqueue
from bot.incidents.lifecycle import Change, EventKind, Incidents
from bot.store.db import Database
from bot.store.models import Alert, Incident, Status, TimelineEvent

READY = "resolve_ready"
REMINDER = "resolve_reminder"

QuietFor = Callable[[str], timedelta]


async def quiet_since(session: AsyncSession, incident: Incident) -> datetime | None:
    """When the incident became quiet in monitoring; None while an alert fires or not monitoring."""
    if incident.status != Status.MONITORING.value or incident.id is None:
        return None
    mine = col(Alert.incident_id) == incident.id
    firing = col(Alert.status) == "firing"
    counts = select(
        sa.func.coalesce(sa.func.sum(sa.case((firing, 1), else_=0)), 0),
        sa.func.max(sa.func.coalesce(col(Alert.ends_at), col(Alert.last_seen))),
    ).where(mine)
    firing_n, last_resolved = (await session.exec(counts)).one()
    if int(firing_n):
        return None
    entered = (
        await session.exec(
            select(sa.func.max(col(TimelineEvent.at))).where(
                col(TimelineEvent.incident_id) == incident.id,
                col(TimelineEvent.kind) == EventKind.STATUS.value,
            )
        )
    ).one()
    moments = [m for m in (entered, incident.mitigated_at, last_resolved) if m is not None]
    return max(_aware(m) for m in moments) if moments else None


async def resolve_ready(session: AsyncSession, incident: Incident) -> bool:
    """Whether the card offers *Resolve now*: quiet, and the offer recorded for this spell."""
    since = await quiet_since(session, incident)
    if since is None:
        return False
    query = select(TimelineEvent).where(
        col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == READY
    )
    return any(e.data.get("since") == since.isoformat() for e in (await session.exec(query)).all())


async def schedule_resolve_offers(
    db: Database, incidents: Incidents, quiet_for: QuietFor, now: datetime
) -> list[str]:
    """Record the offer (and schedule its reminder) for each incident quiet long enough."""
    offered: list[str] = []

    async def due(session: AsyncSession, incident: Incident) -> datetime | None:
        since = await quiet_since(session, incident)
        quiet = quiet_for(incident.severity)
        if since is None or now - since < quiet or await resolve_ready(session, incident):
            return None
        return since

    # Read first, without the write lock: most incidents in monitoring are not due yet.
    async with db.transaction(read_only=True) as session:
        query = select(Incident).where(col(Incident.status) == Status.MONITORING.value)
        candidates = [i.id for i in (await session.exec(query)).all() if await due(session, i)]
    for incident_id in candidates:
        assert incident_id is not None
        async with db.transaction() as session:
            incident = await incidents.lock(session, incident_id)
            # Again, under the lock: another replica may have offered it meanwhile.
            since = await due(session, incident)
            if since is None:
                continue
            quiet = quiet_for(incident.severity)
            minutes = int(quiet.total_seconds() // 60)
            text = (
                f"every alert resolved and quiet for {minutes} min in monitoring: ready to resolve"
            )
            data = {"since": since.isoformat(), "quiet_min": minutes}
            await incidents.record(session, incident, "warroom", [Change(READY, text, data)])
            await enqueue(
                session,
                lane=incident.key,
                kind=REMINDER,
                payload={"since": since.isoformat(), "quiet_min": minutes},
                now=now,
                incident_id=incident.id,
                dedupe_key=f"{REMINDER}:{incident.key}:{int(since.timestamp())}",
                not_before=now + quiet,
            )
            offered.append(incident.key)
    return offered


async def reminder_text(session: AsyncSession, incident: Incident, since: str) -> str | None:
    """The reminder to post, or None when it no longer applies (resolved, firing, moved on)."""
    now_since = await quiet_since(session, incident)
    if now_since is None or now_since.isoformat() != since:
        return None
    return (
        f"✅ {incident.key} has been quiet in monitoring since "
        f"{now_since:%Y-%m-%d %H:%M} UTC, every alert resolved. Resolve it with the card's "
        "*Resolve now* (the form is already written) or `/incident resolve`."
    )


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's max() of a date column comes back as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
