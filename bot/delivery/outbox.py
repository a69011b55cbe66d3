"""The outbox: rows written with the change that caused them, claimed and settled by workers.

Claiming takes, per lane, only the oldest row still pending, so a lane is delivered
in order; ``FOR UPDATE SKIP LOCKED`` (Postgres) or SQLite's single writer keeps two
workers off the same row, and the lease (``claimed_until``) gives a crashed worker's
row to another after it expires. A live worker renews the leases of the rows it is still
working on (a row may wait minutes for Slack's rate limits), so no one else takes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot.store.db import Database
from bot.store.models import Incident, OutboxRow, UTCDateTime

PENDING = "pending"
DONE = "done"
FAILED = "failed"

#: What the worker calls for a row of a kind an integration delivers: (row, incident) → result.
Deliver = Callable[[OutboxRow, Incident], Awaitable[dict[str, Any]]]


async def enqueue(
    session: AsyncSession,
    *,
    lane: str,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    incident_id: int | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
    coalesce: bool = False,
) -> OutboxRow | None:
    """Add a row in the caller's transaction.

    ``coalesce``: if a row of this kind for this lane is pending and not yet claimed, it
    will render the latest state when sent, so no second row is added. ``dedupe_key``:
    a row with this key already exists (even done): nothing is added.
    """
    if coalesce or dedupe_key:
        query = select(col(OutboxRow.id))
        if dedupe_key:
            query = query.where(col(OutboxRow.dedupe_key) == dedupe_key)
        else:
            query = query.where(
                col(OutboxRow.lane) == lane,
                col(OutboxRow.kind) == kind,
                col(OutboxRow.status) == PENDING,
                col(OutboxRow.claimed_until).is_(None),
            )
        if (await session.exec(query)).first() is not None:
            return None
    row = OutboxRow(
        incident_id=incident_id,
        lane=lane,
        kind=kind,
        payload=payload,
        dedupe_key=dedupe_key,
        next_attempt_at=not_before or now,
        created_at=now,
    )
    session.add(row)
    return row


async def enqueue_coalesced(
    session: AsyncSession,
    *,
    kind: str,
    lanes: dict[str, tuple[int | None, datetime]],
    now: datetime,
) -> list[str]:
    """``enqueue(coalesce=True)`` of one ``kind`` for many lanes (lane → its incident id and
    when the row is due) in two statements: the lanes that have such a row pending and
    unclaimed get none. Returns the lanes that got one."""
    if not lanes:
        return []
    query = select(col(OutboxRow.lane)).where(
        col(OutboxRow.lane).in_(list(lanes)),
        col(OutboxRow.kind) == kind,
        col(OutboxRow.status) == PENDING,
        col(OutboxRow.claimed_until).is_(None),
    )
    pending = set((await session.exec(query)).all())
    added = [lane for lane in lanes if lane not in pending]
    rows = [
        OutboxRow(
            incident_id=lanes[lane][0],
            lane=lane,
            kind=kind,
            payload={},
            next_attempt_at=lanes[lane][1],
            created_at=now,
        ).model_dump(exclude={"id"})
        for lane in added
    ]
    if rows:
        await session.exec(sa.insert(_OUTBOX), params=rows)
    return added


_OUTBOX: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]


def _due(dialect: str) -> SelectOfScalar[OutboxRow]:
    """Due rows, the oldest pending of each lane, at ``:now``, at most ``:limit``."""
    earlier = aliased(OutboxRow)
    blocked = (
        sa.select(sa.literal(1))
        .where(
            col(earlier.lane) == col(OutboxRow.lane),
            col(earlier.id) < col(OutboxRow.id),
            col(earlier.status) == PENDING,
        )
        .exists()
    )
    now = sa.bindparam("now", type_=UTCDateTime())
    query = (
        select(OutboxRow)
        .where(
            col(OutboxRow.status) == PENDING,
            col(OutboxRow.next_attempt_at) <= now,
            sa.or_(col(OutboxRow.claimed_until).is_(None), col(OutboxRow.claimed_until) < now),
            ~blocked,
        )
        .order_by(col(OutboxRow.id))
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


_DUE = {dialect: _due(dialect) for dialect in ("sqlite", "postgresql")}


async def claim(
    db: Database, *, worker: str, now: datetime, lease: timedelta, limit: int = 20
) -> list[OutboxRow]:
    """Lease up to ``limit`` due rows, at most one per lane (the lane's oldest pending).

    The query is built once (a worker asks every time a row finishes, mostly finding none).
    """
    async with db.transaction() as session:
        found = await session.exec(_DUE[db.dialect], params={"now": now, "limit": limit})
        rows = list(found.all())
        for row in rows:
            if row.claimed_until is not None:
                # An earlier worker claimed it and never settled (it crashed, or lost its
                # lease mid-call): what it was sending may have gone out.
                row.uncertain = True
            row.claimed_until = now + lease
            row.claimed_by = worker
            session.add(row)
    return rows


async def settle(
    session: AsyncSession,
    row_id: int,
    *,
    worker: str,
    now: datetime,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
    uncertain: bool = False,
    count_attempt: bool = True,
) -> OutboxRow | None:
    """Record the outcome of a claimed row; None if the lease was lost to another worker."""
    row = (
        await session.exec(select(OutboxRow).where(col(OutboxRow.id) == row_id).with_for_update())
    ).first()
    if row is None or row.claimed_by != worker or row.status != PENDING:
        return None
    row.claimed_until = None  # claimed_by stays: who delivered it, or tried last
    if count_attempt:
        row.attempts += 1
    if error is None:
        row.status = DONE
        row.done_at = now
        row.result = result or {}
        row.uncertain = False
    else:
        row.last_error = error[:500]
        row.uncertain = row.uncertain or uncertain
        if retry_at is None:
            row.status = FAILED
            row.done_at = now
        else:
            row.next_attempt_at = retry_at
    session.add(row)
    return row


async def renew(
    db: Database, *, worker: str, ids: Sequence[int], now: datetime, lease: timedelta
) -> int:
    """Extend the leases of ``worker``'s rows still under way; return how many it still held."""
    if not ids:
        return 0
    query = (
        sa.update(OutboxRow)
        .where(
            col(OutboxRow.id).in_(ids),
            col(OutboxRow.claimed_by) == worker,
            col(OutboxRow.status) == PENDING,
        )
        .values(claimed_until=now + lease)
    )
    async with db.transaction() as session:
        result = await session.exec(query)
    return int(result.rowcount)


async def rows_for(db: Database, incident_id: int) -> Sequence[OutboxRow]:
    async with db.transaction(read_only=True) as session:
        query = (
            select(OutboxRow)
            .where(col(OutboxRow.incident_id) == incident_id)
            .order_by(col(OutboxRow.id))
        )
        return list((await session.exec(query)).all())
