"""Numbers for managers: incidents by severity, and time to acknowledge and resolve over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

from sqlmodel import col, select

from bot.incidents.severity import SeverityScheme
from bot.store.db import Database
from bot.store.models import Incident


@dataclass(frozen=True, slots=True)
class WeekPoint:
    week: str  # ISO week start, YYYY-MM-DD
    incidents: int
    tta_min: float | None  # median time to acknowledge, minutes
    ttr_min: float | None  # median time to resolve, minutes


@dataclass(frozen=True, slots=True)
class Report:
    by_severity: list[tuple[str, int]]
    weeks: list[WeekPoint]
    total: int
    open: int


def _minutes(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds() / 60)


async def report(db: Database, scheme: SeverityScheme, *, now: datetime, weeks: int = 12) -> Report:
    since = now - timedelta(weeks=weeks)
    async with db.transaction(read_only=True) as session:
        found = list(
            (await session.exec(select(Incident).where(col(Incident.declared_at) >= since))).all()
        )
    counts = {name: 0 for name in scheme.names}
    for incident in found:
        counts[incident.severity] = counts.get(incident.severity, 0) + 1
    buckets: dict[str, list[Incident]] = {}
    for incident in found:
        start = incident.declared_at - timedelta(days=incident.declared_at.weekday())
        buckets.setdefault(start.strftime("%Y-%m-%d"), []).append(incident)
    points = []
    for week in sorted(buckets):
        group = buckets[week]
        ttas = [
            m
            for i in group
            if (m := _minutes(i.detected_at or i.declared_at, i.acknowledged_at)) is not None
        ]
        ttrs = [
            m
            for i in group
            if (m := _minutes(i.detected_at or i.declared_at, i.resolved_at)) is not None
        ]
        points.append(
            WeekPoint(
                week, len(group), median(ttas) if ttas else None, median(ttrs) if ttrs else None
            )
        )
    return Report(
        by_severity=list(counts.items()),
        weeks=points,
        total=len(found),
        open=sum(1 for i in found if i.state.is_open),
    )
