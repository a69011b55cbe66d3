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

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(connection, *args)`` in the file's thread."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, fn, args)
        except sqlite3.Error as error:
            raise StorageUnavailable(f"{self.what} is unavailable: {error}") from error

    def _run(self, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.timeout)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(self.schema)
            self._conn = conn
        return fn(self._conn, *args)

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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


def write(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """``sql`` for every row in one immediate transaction; the rows it changed."""
    with immediate(conn):
        return conn.executemany(sql, rows).rowcount
