"""Replays and retries recognised: each request is acted on once within a window.

A caller names a request by one or more keys (its signature, the id its sender gave it…). The
first request with those keys is recorded and acted on; another carrying any of the same keys
within the window, received by this process or by another replica, is a repeat. Keys live in
Redis when it is configured (``SET NX`` with an expiry, shared by every replica); without Redis,
or while it does not answer, in the ``replay_key`` table, whose expired rows are purged as
requests come, so it holds at most a window's worth of requests.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from bot.clock import Clock
from bot.store.cache import SharedCache
from bot.store.db import Database
from bot.store.models import ReplayKey

#: How long a request is remembered. Longer than the 5 minutes (either way) a signed request's
#: timestamp is accepted, and than the schedule of Slack's event retries (up to about 6 minutes).
WINDOW = timedelta(minutes=15)
#: A process deletes expired rows at most this often.
PURGE_EVERY = timedelta(minutes=1)
_MAX_KEY = 200
_TABLE: sa.Table = ReplayKey.__table__  # type: ignore[attr-defined]


class ReplayGuard:
    """``first(keys)``: True the first time a request is seen, False for a repeat."""

    def __init__(
        self,
        db: Database,
        cache: SharedCache,
        clock: Clock,
        *,
        scope: str = "default",
        window: timedelta = WINDOW,
    ) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock
        self.scope = scope[:40]
        self.window = window
        self._purged_at: datetime | None = None

    async def first(self, keys: Iterable[str]) -> bool:
        """Record ``keys``; False if any of them was recorded within the window.

        Raises :class:`~bot.errors.StorageUnavailable` when neither Redis nor the database
        can answer: the caller decides whether to act regardless.
        """
        wanted = list(dict.fromkeys(_short(k) for k in keys if k))
        if not wanted:
            return True
        if self.cache.configured:
            ttl = max(1, int(self.window.total_seconds()))
            # Every key is claimed, even after a repeat is found: all of them name this request.
            claims = [await self.cache.claim(f"replay:{self.scope}:{k}", ttl) for k in wanted]
            if None not in claims:
                return all(claims)
        return await self._first_in_db(wanted)

    async def _first_in_db(self, keys: list[str]) -> bool:
        now = self.clock.now()
        statement = _claim(self.db.dialect)
        fresh = True
        async with self.db.transaction() as session:
            if self._purged_at is None or now - self._purged_at >= PURGE_EVERY:
                await session.exec(_purge(now))
                self._purged_at = now
            for key in keys:
                values = {
                    "scope": self.scope,
                    "key": key,
                    "seen_at": now,
                    "expires_at": now + self.window,
                }
                claimed = (await session.exec(statement, params=values)).first()
                fresh = fresh and claimed is not None
        return fresh

    async def purge(self) -> int:
        """Delete the expired rows now; how many there were."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            result = await session.exec(_purge(now))
            self._purged_at = now
            return int(result.rowcount or 0)


def _purge(now: datetime) -> sa.Delete:
    return sa.delete(_TABLE).where(_TABLE.c.expires_at < now)


def _short(key: str) -> str:
    """The key as stored: itself when it fits the column, else its SHA-256."""
    return key if len(key) <= _MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@functools.cache
def _claim(dialect: str) -> ReturningInsert[Any]:
    """INSERT the key; on conflict take over the row only if it has expired; RETURNING id.

    A row comes back when this request is the first within the window.
    """
    insert = postgresql.insert(ReplayKey) if dialect == "postgresql" else sqlite.insert(ReplayKey)
    table = _TABLE
    return insert.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={"seen_at": insert.excluded.seen_at, "expires_at": insert.excluded.expires_at},
        where=table.c.expires_at <= insert.excluded.seen_at,
    ).returning(table.c.id)
