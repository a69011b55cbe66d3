"""Home pages through the outbox: shown again when asked for, or when an incident someone is
staffed on changes, at most once per person every ``every`` (``slack.home_refresh``).

A ``home`` row per person (lane ``home:<user>``) says "show this person's home again"; it
carries no state, so it renders whatever is true when it is delivered. Hence:

- a row still waiting covers any later request: nothing is added (two changes together, or
  a change while the person opens the page, make one publish);
- a request while that person's row is being delivered adds one row for after it, since the
  one under way may have read the store before the change;
- a row comes due no sooner than ``every`` after the last one shown; a row that would go out
  sooner anyway (a second replica's, say) waits, not counted as an attempt (:class:`TooSoon`).

The outbox gives each row to one worker, across replicas, and a crashed worker's row to the
next one; showing a home twice is harmless (it replaces the page), so a retry needs no marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.delivery.outbox import DONE, PENDING, enqueue
from bot.incidents.home import load_home, open_channels
from bot.incidents.lifecycle import EventKind
from bot.incidents.severity import SeverityScheme
from bot.ports.chat import Chat, Homes, RateLimited
from bot.store.db import Database
from bot.store.models import Incident, OutboxRow, TimelineEvent

HOME = "home"
DEFAULT_EVERY = timedelta(seconds=10)
#: Changes that alter what a home page shows (a note or a pinned message does not).
SHOWN = frozenset(
    {
        EventKind.DECLARED,
        EventKind.SEVERITY,
        EventKind.STATUS,
        EventKind.ROLE,
        EventKind.EDITED,
        EventKind.RESOLVED,
        EventKind.REOPENED,
        "channel",  # the incident's channel opened: the page links to it
    }
)


class TooSoon(RateLimited):
    """This person's home was shown less than ``every`` ago: try again after ``retry_after``."""


def lane(user: str) -> str:
    return f"home:{user}"[:80]


async def _last_shown(session: AsyncSession, lane_name: str) -> datetime | None:
    query = (
        select(OutboxRow)
        .where(
            col(OutboxRow.lane) == lane_name,
            col(OutboxRow.kind) == HOME,
            col(OutboxRow.status) == DONE,
        )
        .order_by(col(OutboxRow.id).desc())
        .limit(1)
    )
    last = (await session.exec(query)).first()
    shown = (last.result or {}).get("shown_at") if last is not None else None
    return datetime.fromisoformat(shown) if isinstance(shown, str) else None


async def request_home(
    session: AsyncSession, user: str, *, now: datetime, every: timedelta = DEFAULT_EVERY
) -> OutboxRow | None:
    """Ask for ``user``'s home to be shown again, in the caller's transaction.

    Returns the row added, or None when a waiting row already covers it.
    """
    name = lane(user)
    query = select(OutboxRow).where(
        col(OutboxRow.lane) == name,
        col(OutboxRow.kind) == HOME,
        col(OutboxRow.status) == PENDING,
    )
    waiting = list((await session.exec(query)).all())
    if any(row.claimed_until is None for row in waiting):
        return None
    not_before = now + every if waiting else now
    if not waiting and (shown := await _last_shown(session, name)) is not None:
        not_before = max(now, shown + every)
    return await enqueue(
        session, lane=name, kind=HOME, payload={"user": user}, now=now, not_before=not_before
    )


async def show_home(
    db: Database, clock: Clock, user: str, *, every: timedelta = DEFAULT_EVERY
) -> bool:
    """``user`` opened their home: show it again (True if a row was added for it)."""
    async with db.transaction() as session:
        return await request_home(session, user, now=clock.now(), every=every) is not None


class HomeListener:
    """A change listener: a visible change shows its role holders' homes again.

    A role's previous holder too (the incident leaves their page). Channel members who hold
    no role see the change the next time they open their home.
    """

    def __init__(self, clock: Clock, every: timedelta = DEFAULT_EVERY) -> None:
        self.clock = clock
        self.every = every

    async def __call__(
        self, session: AsyncSession, incident: Incident, events: Sequence[TimelineEvent]
    ) -> None:
        if not any(event.kind in SHOWN for event in events):
            return
        people = {who for who in incident.roles.values() if who}
        for event in events:
            if event.kind == EventKind.ROLE and (previous := (event.data or {}).get("previous")):
                people.add(str(previous))
        now = self.clock.now()
        for user in sorted(people):
            await request_home(session, user, now=now, every=self.every)


class HomeDelivery:
    """Delivers ``home`` rows: the person's home read from the store, shown by the chat."""

    def __init__(
        self,
        db: Database,
        chat: Chat,
        scheme: SeverityScheme,
        clock: Clock,
        *,
        public_url: str | None = None,
        every: timedelta = DEFAULT_EVERY,
    ) -> None:
        self.db = db
        self.homes = chat if isinstance(chat, Homes) else None
        self.scheme = scheme
        self.clock = clock
        self.public_url = public_url
        self.every = every

    async def deliver(self, row: OutboxRow) -> dict[str, Any]:
        user = str(row.payload.get("user") or "")
        if self.homes is None or not user:
            return {"skipped": "this chat has no home pages"}
        now = self.clock.now()
        async with self.db.transaction(read_only=True) as session:
            shown = await _last_shown(session, row.lane)
        if shown is not None and now < shown + self.every:
            raise TooSoon((shown + self.every - now).total_seconds(), "home")
        channels = await open_channels(self.db)
        member_of = await self.homes.member_channels(user, channels) if channels else set()
        home = await load_home(
            self.db, self.scheme, user, member_of=member_of, public_url=self.public_url
        )
        if not await self.homes.publish_home(user, home):
            return {"skipped": f"{user} is not a person the chat knows"}
        return {"shown_at": now.isoformat(), "mine": len(home.mine), "open": home.open_total}
