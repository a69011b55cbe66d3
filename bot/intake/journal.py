"""The intake journal: accepted webhook bodies, durable before they are folded.

A webhook request appends its body (as it arrived, with its endpoint, source and delivery
key) and is answered once that row is committed; :class:`bot.intake.folder.Folder` turns
the rows into incidents, alerts and timeline events in id order and deletes them. An
append is ONE statement for a whole batch of requests (:class:`bot.intake.batch.Batcher`
with the journal as its sink) on a connection of its own, so a storm is taken at the speed
of parsing while the fold catches up behind it.

Where it lives:

- **Postgres**: the ``intake_entry`` table of the database (migration 0008). Appends run
  on the journal's own autocommit connection (one round trip a batch); the folder takes,
  folds and deletes entries in one transaction, so a crash repeats nothing.
- **SQLite**: a file beside the database, ``<database>-intake``, written through one
  sqlite3 connection in a thread of its own (one hop a batch). SQLite has one writer per
  file: in the database's own file every append would queue behind the fold. The folder
  deletes entries after their fold commits; a crash between the two folds them again,
  which changes nothing (the fold recognises a delivery key it has stored).

The same delivery key appended twice (a sender's retry before the fold) is one row.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.intake.alerts.model import Delivery
from bot.intake.fold import Endpoint, IntakeResult
from bot.store.db import Database
from bot.store.direct import DirectConnection
from bot.store.models import IntakeEntry
from bot.store.sidecar import SideFile, side_path, write, write_rows

#: Failed folds after which an entry is left in the journal for a person to look at.
MAX_ATTEMPTS = 5

_TABLE: sa.Table = IntakeEntry.__table__  # type: ignore[attr-defined]
_KEY_MAX = 200
_SQLITE_SCHEMA = """CREATE TABLE IF NOT EXISTS intake_entry (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    source TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    received_at TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    UNIQUE (endpoint, delivery_key)
)"""


@functools.lru_cache(maxsize=64)
def _sqlite_append(rows: int) -> str:
    """Append ``rows`` entries in one statement (see :func:`bot.store.sidecar.write_rows`)."""
    marks = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)  # parameter marks only: no value
    columns = "endpoint, source, delivery_key, received_at, alerts, body"
    return f"INSERT INTO intake_entry ({columns}) VALUES {marks} ON CONFLICT DO NOTHING"  # noqa: S608


@functools.lru_cache(maxsize=64)
def _sqlite_remove(rows: int) -> str:
    marks = ", ".join(["?"] * rows)  # parameter marks only: no value
    return f"DELETE FROM intake_entry WHERE id IN ({marks})"  # noqa: S608


# One statement for the whole batch, its rows as ONE JSON parameter (encoded in C; the
# server, idle beside a storm, takes the rows apart): arrays of columns cost the web loop a
# Python dump per element, a tenth of its time in a storm.
_PG_APPEND = (
    "INSERT INTO intake_entry "
    "(endpoint, source, delivery_key, received_at, alerts, body, attempts) "
    "SELECT r->>0, r->>1, r->>2, %s::timestamptz, (r->>3)::int, decode(r->>4, 'hex'), 0 "
    "FROM json_array_elements(%s::json) AS r ON CONFLICT (endpoint, delivery_key) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal row, as the folder reads it."""

    id: int
    endpoint: str
    source: str
    delivery_key: str
    alerts: int
    body: bytes


def sidecar_path(database_url: str) -> Path | None:
    """The SQLite journal file of ``database_url`` (None on Postgres)."""
    return side_path(database_url, "intake")


def journal_left(conn: sa.Connection) -> int:
    """Entries not folded yet, read on a synchronous connection to the journal's database
    (the benchmarks and drills: they wait for the fold before counting)."""
    if not sa.inspect(conn).has_table("intake_entry"):
        return 0  # a SQLite journal file nothing was appended to yet
    return int(conn.execute(sa.text("SELECT count(*) FROM intake_entry")).scalar_one())


class Journal:
    """The journal of ``db``: appends for the webhooks, entries for the folder."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        path = sidecar_path(db.url)
        #: The journal is a table of ``db`` (Postgres): fold and delete in one transaction.
        self.shared = path is None
        self._file = (
            SideFile(path, db.connect_timeout, _SQLITE_SCHEMA, what="the intake journal")
            if path is not None
            else None
        )
        self._pg = DirectConnection(db.url, db.connect_timeout) if path is None else None

    # -- appending: the batcher's sink -------------------------------------------------

    async def receive_many(
        self, deliveries: Sequence[tuple[Endpoint, Delivery, str]]
    ) -> list[IntakeResult]:
        """Append every delivery in ONE statement; each is answered as queued."""
        now = self.clock.now().astimezone(UTC)
        if self._pg is not None:
            rows = msgspec.json.encode(
                [
                    [e.name, e.source, k[:_KEY_MAX], len(d.alerts), d.body.hex()]
                    for e, d, k in deliveries
                ]
            )
            await self._pg.execute(_PG_APPEND, (now, rows.decode()))
        else:
            assert self._file is not None
            stamp = _sqlite_time(now)
            await self._file.quick(
                _append,
                [
                    (e.name, e.source, k[:_KEY_MAX], stamp, len(d.alerts), d.body)
                    for e, d, k in deliveries
                ],
            )
        return [IntakeResult(queued=True, alerts=len(d.alerts)) for _, d, _ in deliveries]

    async def receive(
        self, endpoint: Endpoint, delivery: Delivery, *, delivery_key: str
    ) -> IntakeResult:
        return (await self.receive_many([(endpoint, delivery, delivery_key)]))[0]

    # -- folding -------------------------------------------------------------------------

    async def oldest(
        self, session: AsyncSession | None, *, deliveries: int, alerts: int
    ) -> list[Entry]:
        """The oldest entries still to fold: up to ``deliveries`` rows and about ``alerts``
        alerts (the first entry always, however many alerts it has). ``session``: the
        folder's transaction when the journal is shared."""
        if self._file is not None:
            rows: Sequence[Any] = await self._file.call(_oldest, deliveries)
        else:
            assert session is not None
            rows = (
                await session.exec(  # type: ignore[call-overload]
                    sa.select(
                        _TABLE.c.id,
                        _TABLE.c.endpoint,
                        _TABLE.c.source,
                        _TABLE.c.delivery_key,
                        _TABLE.c.alerts,
                        _TABLE.c.body,
                    )
                    .where(_TABLE.c.attempts < MAX_ATTEMPTS)
                    .order_by(_TABLE.c.id)
                    .limit(deliveries)
                )
            ).all()
        entries: list[Entry] = []
        total = 0
        for ident, endpoint, source, key, size, body in rows:
            if entries and total + size > alerts:
                break
            entries.append(Entry(ident, endpoint, source, key, size, bytes(body)))
            total += size
        return entries

    async def remove(self, session: AsyncSession | None, ids: Sequence[int]) -> None:
        """Delete folded entries: in ``session`` when shared, else in the journal file."""
        if not ids:
            return
        if self._file is not None:
            await self._file.call(_remove, list(ids))
            return
        assert session is not None
        await session.exec(sa.delete(_TABLE).where(_TABLE.c.id.in_(ids)))

    async def failed(self, entry_id: int, error: str) -> None:
        """Count a failed fold of one entry (its own transaction)."""
        if self._file is not None:
            await self._file.call(_failed, entry_id, error[:500])
            return
        async with self.db.transaction() as session:
            await session.exec(
                sa.update(_TABLE)
                .where(_TABLE.c.id == entry_id)
                .values(attempts=_TABLE.c.attempts + 1, error=error[:500])
            )

    async def backlog(self) -> tuple[int, datetime | None, int]:
        """Entries still to fold, when the oldest arrived, and entries given up on."""
        if self._file is not None:
            pending, oldest, stuck = await self._file.call(_backlog)
        else:
            async with self.db.transaction(read_only=True) as session:
                pending, oldest = (
                    await session.exec(  # type: ignore[call-overload]
                        sa.select(sa.func.count(), sa.func.min(_TABLE.c.received_at)).where(
                            _TABLE.c.attempts < MAX_ATTEMPTS
                        )
                    )
                ).one()
                stuck = (
                    await session.exec(  # type: ignore[call-overload]
                        sa.select(sa.func.count()).where(_TABLE.c.attempts >= MAX_ATTEMPTS)
                    )
                ).scalar_one()
        return int(pending), _aware(oldest), int(stuck)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._file is not None:
            await self._file.close()


def _append(conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> None:
    write_rows(conn, _sqlite_append, rows)


def _oldest(conn: sqlite3.Connection, limit: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, endpoint, source, delivery_key, alerts, body FROM intake_entry "
        "WHERE attempts < ? ORDER BY id LIMIT ?",
        (MAX_ATTEMPTS, limit),
    ).fetchall()


def _remove(conn: sqlite3.Connection, ids: list[int]) -> None:
    write_rows(conn, _sqlite_remove, [(i,) for i in ids])


def _failed(conn: sqlite3.Connection, entry_id: int, error: str) -> None:
    write(
        conn,
        "UPDATE intake_entry SET attempts = attempts + 1, error = ? WHERE id = ?",
        [(error, entry_id)],
    )


def _backlog(conn: sqlite3.Connection) -> tuple[int, str | None, int]:
    pending, oldest = conn.execute(
        "SELECT count(*), min(received_at) FROM intake_entry WHERE attempts < ?",
        (MAX_ATTEMPTS,),
    ).fetchone()
    (stuck,) = conn.execute(
        "SELECT count(*) FROM intake_entry WHERE attempts >= ?", (MAX_ATTEMPTS,)
    ).fetchone()
    return pending, oldest, stuck


def _sqlite_time(when: datetime) -> str:
    """SQLAlchemy's own SQLite DATETIME text, so the stored times read back alike."""
    return when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _aware(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
