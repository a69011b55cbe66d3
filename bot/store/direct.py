"""A Postgres connection of its own, in autocommit, for statements that must answer fast.

The intake journal's appends and the replay keys a Slack ack records are single statements
that commit by themselves. Through the ORM's pool each would be several round trips (begin,
statement, commit), each one more turn of an event loop that a storm keeps busy; here each
is one round trip. The connection is made on first use and again after any failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bot.errors import StorageUnavailable


class DirectConnection:
    """``await conn.execute(sql, params)``: one statement, one round trip, its rows back."""

    def __init__(self, url: str, timeout: float) -> None:
        self._timeout = max(1, int(timeout))
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(False)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._conninfo,
                        autocommit=True,
                        connect_timeout=self._timeout,
                        options="-c statement_timeout=10000",
                    )
                cursor = await self._conn.execute(sql, params)
                return await cursor.fetchall() if cursor.description else []
            except psycopg.Error as error:
                await self.close()
                raise StorageUnavailable(f"the database is unavailable: {error}") from error

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()
