"""SQLite files beside the database, for short writes that must not wait for the fold.

SQLite has one writer per file: while the intake folder commits a round into the database,
every other write to it waits for that commit. What has to answer within milliseconds during
a storm (the intake journal's appends, the replay keys recorded before a Slack ack) writes
to a file of its own beside the database, ``<database>-<name>``, through one sqlite3
connection in a thread of its own: one thread hop a call. Processes on one database share
its side files as they share the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from bot.errors import StorageUnavailable

_T = TypeVar("_T")

#: A quick write out of :data:`CHECKPOINT_EVERY` goes through the file's thread instead, whose
#: connection checkpoints the write-ahead log (copies it into the file, syncs) when it is long.
CHECKPOINT_EVERY = 64


def side_path(database_url: str, name: str) -> Path | None:
    """The side file ``name`` of a SQLite ``database_url`` (None for any other database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    return Path(f"{url.database}-{name}")


class SideFile:
    """One side file: ``schema`` created on first use, calls run one at a time in its thread."""

    def __init__(self, path: Path, timeout: float, schema: str, *, what: str) -> None:
        self.path = path
        self.timeout = timeout
        self.schema = schema
        self.what = what
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"side-{path.name}"[:15])
        self._conn: sqlite3.Connection | None = None
        self._quick: sqlite3.Connection | None = None  # the event loop thread's, see quick()
        self._quick_writes = 0

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(connection, *args)`` in the file's thread."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, fn, args)
        except sqlite3.Error as error:
            raise StorageUnavailable(f"{self.what} is unavailable: {error}") from error

    async def quick(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(connection, *args)`` on the calling (event loop) thread when the file is free
        at once, else as :meth:`call` does, in the file's thread, waiting for the lock.

        For a short write that must not wait for the event loop: a thread's call needs the
        GIL back after each step, and in a storm the loop's thread holds it while it parses
        the next requests, so a 0.1 ms write took milliseconds in the thread. On the loop
        thread it never waits: its connection does not wait for a lock (another writer
        holding it sends the call to the thread) and does not checkpoint (every
        :data:`CHECKPOINT_EVERY`-th call goes to the thread, whose connection does).
        """
        self._quick_writes += 1
        if self._quick_writes % CHECKPOINT_EVERY:
            try:
                if self._quick is None:
                    self._quick = self._open(timeout=0, checkpoints=False)
                return fn(self._quick, *args)
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise StorageUnavailable(f"{self.what} is unavailable: {error}") from error
            except sqlite3.Error as error:
                raise StorageUnavailable(f"{self.what} is unavailable: {error}") from error
        return await self.call(fn, *args)

    def _open(self, *, timeout: float, checkpoints: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=timeout, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            if not checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.executescript(self.schema)
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        if self._conn is None:
            self._conn = self._open(timeout=self.timeout, checkpoints=True)
        return fn(self._conn, *args)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._quick is not None:
            self._quick.close()
            self._quick = None

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=False)


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, its lock taken at the start: committed, or rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


#: Rows bound in one statement at most (SQLite takes up to 32,766 parameters).
ROWS_PER_STATEMENT = 500


def write_rows(
    conn: sqlite3.Connection, statement: Callable[[int], str], rows: Sequence[Sequence[Any]]
) -> None:
    """``rows`` written by ``statement(n)``, an SQL text taking n rows' parameters, run as
    few times as it takes: once for up to :data:`ROWS_PER_STATEMENT` rows, in autocommit (one
    statement is its own transaction); more in one immediate transaction.

    Why not ``executemany``: each statement hands the GIL over and back (to prepare, to
    step) and ``executemany`` steps once per row. While the event loop's thread is busy
    (a storm) every handover waits for it, up to the switch interval: 16 journal rows took
    about 3 ms that way, against 0.07 ms on an idle process.
    """
    chunks = [rows[i : i + ROWS_PER_STATEMENT] for i in range(0, len(rows), ROWS_PER_STATEMENT)]
    with immediate(conn) if len(chunks) > 1 else contextlib.nullcontext(conn):
        for chunk in chunks:
            conn.execute(statement(len(chunk)), [value for row in chunk for value in row])


def write(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """``sql`` for every row in one immediate transaction; the rows it changed."""
    with immediate(conn):
        return conn.executemany(sql, rows).rowcount
