"""A person's home page: the open incidents they are in, and every open incident by severity.

The chat renders it (Slack's App Home tab); this module only says what is on it. A person is
*in* an incident when they hold one of its roles or are a member of its channel (which only the
chat knows: the caller passes the channels). Incidents are ordered most severe first, then
newest; the page shows at most ``limit`` of all open ones and says how many it left out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, func, select

from bot.errors import InvalidSeverity
from bot.incidents.severity import SeverityScheme
from bot.store.db import Database
from bot.store.models import Incident, Status

#: Open incidents read to find a person's own (an alert storm may open hundreds).
SCAN_MAX = 1000
OPEN_SHOWN = 50


@dataclass(frozen=True, slots=True)
class HomeIncident:
    key: str
    title: str
    severity: str
    severity_label: str
    rank: int  # the severity's place in the scheme, 0 the most severe
    status: str
    declared_at: datetime
    channel_id: str | None
    commander: str | None
    page_url: str | None
    roles: tuple[str, ...] = ()  # the roles the page's person holds on it


@dataclass(frozen=True, slots=True)
class HomeView:
    user: str
    mine: tuple[HomeIncident, ...]
    open: tuple[HomeIncident, ...]  # the most severe / newest open incidents
    open_total: int  # all open incidents (``open`` may show fewer)
    pages: tuple[tuple[str, str], ...] = ()  # (label, url) of the manager pages
    levels: tuple[str, ...] = ()  # the scheme's severities, most severe first


def pages(public_url: str | None) -> tuple[tuple[str, str], ...]:
    """The manager pages (``handlers/web.py``), when warroom has a public address."""
    if not public_url:
        return ()
    base = public_url.rstrip("/")
    return (("Open incidents", f"{base}/incidents"), ("Report", f"{base}/report"))


def incidents_page(public_url: str | None) -> str | None:
    return f"{public_url.rstrip('/')}/incidents" if public_url else None


async def open_channels(db: Database) -> list[str]:
    """The channels of the open incidents (to ask the chat which a person is in)."""
    query = select(col(Incident.channel_id)).where(
        col(Incident.status) != Status.RESOLVED.value, col(Incident.channel_id).is_not(None)
    )
    async with db.transaction(read_only=True) as session:
        return [str(c) for c in (await session.exec(query.limit(SCAN_MAX))).all() if c]


async def load_home(
    db: Database,
    scheme: SeverityScheme,
    user: str,
    *,
    member_of: Collection[str] = (),
    public_url: str | None = None,
    limit: int = OPEN_SHOWN,
) -> HomeView:
    """``user``'s home: open incidents they hold a role on or whose channel is in ``member_of``."""
    ranks = {level.name: n for n, level in enumerate(scheme.levels)}
    rank = sa.case(ranks, value=col(Incident.severity), else_=len(ranks))
    is_open = col(Incident.status) != Status.RESOLVED.value
    query = (
        select(Incident).where(is_open).order_by(rank, col(Incident.number).desc()).limit(SCAN_MAX)
    )
    async with db.transaction(read_only=True) as session:
        found = list((await session.exec(query)).all())
        total = int((await session.exec(select(func.count()).where(is_open))).one())
    base = public_url.rstrip("/") if public_url else None
    channels = set(member_of)

    def item(incident: Incident, roles: tuple[str, ...] = ()) -> HomeIncident:
        try:
            label = scheme.get(incident.severity).label
        except InvalidSeverity:
            label = ""
        return HomeIncident(
            key=incident.key,
            title=incident.title,
            severity=incident.severity,
            severity_label=label,
            rank=ranks.get(incident.severity, len(ranks)),
            status=incident.status,
            declared_at=incident.declared_at,
            channel_id=incident.channel_id,
            commander=incident.roles.get("commander"),
            page_url=f"{base}/incidents/{incident.key}" if base else None,
            roles=roles,
        )

    mine = []
    for incident in found:
        held = tuple(role for role, who in incident.roles.items() if who == user)
        if held or (incident.channel_id is not None and incident.channel_id in channels):
            mine.append(item(incident, held))
    return HomeView(
        user=user,
        mine=tuple(mine),
        open=tuple(item(i) for i in found[:limit]),
        open_total=total,
        pages=pages(public_url),
        levels=tuple(scheme.names),
    )
