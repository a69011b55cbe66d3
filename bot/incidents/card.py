"""What the incident card shows, as data: the core decides, a chat adapter renders.

:func:`build_card` reads the incident and its alerts; the Slack adapter turns the
:class:`CardView` into Block Kit, the local transcript into text. :func:`load_card` reads them
from the database: the counts in SQL and only the most relevant alerts, so a card costs the same
for an incident of ten alerts as for one of ten thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.incidents.followups import FollowUpTally, card_follow_ups
from bot.incidents.severity import SeverityScheme
from bot.incidents.silences import OpenSilence, open_silences
from bot.incidents.statuspage import StatusPageLink, status_pages
from bot.store.models import Alert, Incident

MAX_ALERTS_SHOWN = 5
#: The alerts a card reads for its lines and links: firing first, newest first.
ALERTS_READ = 50


@dataclass(frozen=True, slots=True)
class AlertTally:
    firing: int
    resolved: int
    notifications: int


@dataclass(frozen=True, slots=True)
class AlertLine:
    name: str
    summary: str
    status: str
    count: int
    links: dict[str, str]


@dataclass(frozen=True, slots=True)
class NextStep:
    """A mitigation the latest diagnostic results suggest: the card offers it as a button.

    ``because`` says which result suggests it (``idle_connections red: idle connections = 63
    (red: > 50)``); ``params`` are the values taken from that result's first row.
    """

    runbook: str
    step: str
    title: str
    because: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CardView:
    key: str
    title: str
    severity: str
    severity_label: str
    severity_reason: str
    status: str
    impact: str
    service: str | None
    declared_at: datetime
    detected_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    roles: dict[str, str]
    alerts_firing: int
    alerts_resolved: int
    alerts_total_notifications: int
    alerts: tuple[AlertLine, ...]
    links: dict[str, str] = field(default_factory=dict)
    runbook: tuple[str, str] | None = None  # (title, url)
    page_url: str | None = None
    version: int = 1
    silences: tuple[OpenSilence, ...] = ()  # in force now
    silenceable: bool = False  # it has Alertmanager alerts
    next_steps: tuple[NextStep, ...] = ()  # suggested mitigations (bot.runbooks.suggest)
    resolve_ready: bool = False  # monitoring, every alert resolved, quiet long enough
    status_pages: tuple[StatusPageLink, ...] = ()  # public status incidents (statuspage)
    status_page_ready: bool = False  # this process can publish to a status page
    follow_ups: FollowUpTally = field(default_factory=FollowUpTally)  # counts, the first few

    @property
    def commander(self) -> str | None:
        return self.roles.get("commander")

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"


def build_card(
    incident: Incident,
    alerts: Sequence[Alert],
    scheme: SeverityScheme,
    *,
    runbook: tuple[str, str] | None = None,
    page_url: str | None = None,
    tally: AlertTally | None = None,
    silences: Sequence[OpenSilence] = (),
) -> CardView:
    """The card for ``incident``: firing alerts first, newest first, at most five listed.

    ``tally`` gives the counts when ``alerts`` are not all of them (see :func:`load_card`).
    """
    if tally is None:
        tally = AlertTally(
            firing=sum(1 for a in alerts if a.status == "firing"),
            resolved=sum(1 for a in alerts if a.status != "firing"),
            notifications=sum(a.count for a in alerts),
        )
    ordered = sorted(alerts, key=lambda a: (a.status != "firing", -a.last_seen.timestamp()))
    links: dict[str, str] = {}
    for alert in ordered:
        for name in ("runbook", "dashboard", "generator", "panel", "pagerduty"):
            if name in alert.links and name not in links:
                links[name] = alert.links[name]
    try:
        label = scheme.get(incident.severity).label
    except ValueError:
        label = incident.severity
    return CardView(
        key=incident.key,
        title=incident.title,
        severity=incident.severity,
        severity_label=label,
        severity_reason=incident.severity_reason,
        status=incident.status,
        impact=incident.impact,
        service=incident.service,
        declared_at=incident.declared_at,
        detected_at=incident.detected_at,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        resolved_at=incident.resolved_at,
        roles=dict(incident.roles),
        alerts_firing=tally.firing,
        alerts_resolved=tally.resolved,
        alerts_total_notifications=tally.notifications,
        alerts=tuple(
            AlertLine(
                name=a.labels.get("alertname") or a.summary,
                summary=a.summary,
                status=a.status,
                count=a.count,
                links=dict(a.links),
            )
            for a in ordered[:MAX_ALERTS_SHOWN]
        ),
        links=links,
        runbook=runbook or ((("Runbook", links["runbook"])) if "runbook" in links else None),
        page_url=page_url,
        version=incident.version,
        silences=tuple(silences),
        silenceable=any(a.source == "alertmanager" for a in alerts),
    )


async def load_card(
    session: AsyncSession,
    incident: Incident,
    scheme: SeverityScheme,
    *,
    page_url: str | None = None,
    now: datetime | None = None,
) -> CardView:
    """The card of ``incident`` from the database: a few queries, whatever its size (the alerts'
    and the follow-ups' counts in SQL, only the first of each read).

    ``now`` (the wall clock when not given) decides which silences are still in force.
    """
    mine = col(Alert.incident_id) == incident.id
    firing = col(Alert.status) == "firing"
    counts = select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((firing, 1), else_=0)), 0),
        sa.func.coalesce(sa.func.sum(col(Alert.count)), 0),
    ).where(mine)
    total, firing_n, notifications = (await session.exec(counts)).one()
    relevant = (
        select(Alert)
        .where(mine)
        .order_by(sa.case((firing, 0), else_=1), col(Alert.last_seen).desc(), col(Alert.id))
        .limit(ALERTS_READ)
        .options(defer(Alert.raw))  # type: ignore[arg-type]
    )
    alerts = list((await session.exec(relevant)).all())
    tally = AlertTally(int(firing_n), int(total) - int(firing_n), int(notifications))
    assert incident.id is not None
    silences = await open_silences(session, incident.id, now=now)
    card = build_card(incident, alerts, scheme, page_url=page_url, tally=tally, silences=silences)
    return replace(
        card,
        status_pages=await status_pages(session, incident.id),
        follow_ups=await card_follow_ups(session, incident.id),
    )
