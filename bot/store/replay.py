"""Replays and retries recognised: each request is acted on once within a window.

A caller names a request by one or more keys (its signature, the id its sender gave it…). The
first request with those keys is recorded and acted on; another carrying any of the same keys
within the window, received by this process or by another replica, is a repeat. Keys live in
Redis when it is configured (``SET NX`` with an expiry, shared by every replica); without Redis,
or while it does not answer, in the database, whose expired keys are purged as requests come,
so it holds at most a window's worth of requests.

A Slack ack waits for this check, so it is one round trip that never queues behind the fold
of a storm: on Postgres one statement on a connection of its own
(:class:`bot.store.direct.DirectConnection`) into the ``replay_key`` table; on SQLite, whose
one writer the fold holds while it commits, the side file ``<database>-replay``
(:mod:`bot.store.sidecar`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bot.clock import Clock
from bot.store.cache import SharedCache
from bot.store.db import Database
from bot.store.direct import DirectConnection
from bot.store.sidecar import SideFile, immediate, side_path, write

#: How long a request is remembered. Longer than the 5 minutes (either way) a signed request's
#: timestamp is accepted, and than the schedule of Slack's event retries (up to about 6 minutes).
WINDOW = timedelta(minutes=15)
#: A process deletes expired rows at most this often.
PURGE_EVERY = timedelta(minutes=1)
_MAX_KEY = 200


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
        self.cache = cache
        self.clock = clock
        self.scope = scope[:40]
        self.window = window
        self._purged_at: datetime | None = None
        path = side_path(db.url, "replay")
        self._file = (
            SideFile(path, db.connect_timeout, _SQLITE_SCHEMA, what="the replay keys")
            if path is not None
            else None
        )
        self._pg = DirectConnection(db.url, db.connect_timeout) if path is None else None

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
        now = self.clock.now().astimezone(UTC)
        purge = self._purged_at is None or now - self._purged_at >= PURGE_EVERY
        if self._file is not None:
            fresh = await self._file.call(
                _claim_in_file, self.scope, keys, now.timestamp(), self.window, purge
            )
        else:
            assert self._pg is not None
            if purge:
                await self._pg.execute(_PG_PURGE, (now,))
            claimed = await self._pg.execute(_PG_CLAIM, (self.scope, now, now + self.window, keys))
            fresh = len(claimed) == len(keys)
        if purge:
            self._purged_at = now
        return fresh

    async def purge(self) -> int:
        """Delete the expired keys now; how many there were."""
        now = self.clock.now().astimezone(UTC)
        if self._file is not None:
            purged = await self._file.call(_purge_file, now.timestamp())
        else:
            assert self._pg is not None
            purged = int((await self._pg.execute(_PG_PURGE, (now,)))[0][0])
        self._purged_at = now
        return purged

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
        if self._pg is not None:
            await self._pg.close()


def _short(key: str) -> str:
    """The key as stored: itself when it fits the column, else its SHA-256."""
    return key if len(key) <= _MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# Postgres: the ``replay_key`` table (migration 0005). A row comes back for each key that is
# new, or whose earlier claim has expired (taken over): this request is the first.
_PG_CLAIM = (
    "INSERT INTO replay_key (scope, key, seen_at, expires_at) "
    "SELECT %s, k, %s, %s FROM unnest(%s::text[]) AS k "
    "ON CONFLICT (scope, key) DO UPDATE SET seen_at = excluded.seen_at, "
    "expires_at = excluded.expires_at WHERE replay_key.expires_at <= excluded.seen_at "
    "RETURNING key"
)
_PG_PURGE = (
    "WITH gone AS (DELETE FROM replay_key WHERE expires_at < %s RETURNING 1) "
    "SELECT count(*) FROM gone"
)

# SQLite: the side file, times as UNIX seconds.
_SQLITE_SCHEMA = """CREATE TABLE IF NOT EXISTS replay_key (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS ix_replay_key_expires_at ON replay_key (expires_at);"""
_SQLITE_PURGE = "DELETE FROM replay_key WHERE expires_at < ?"
_SQLITE_CLAIM = (
    "INSERT INTO replay_key (scope, key, seen_at, expires_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope, key) DO UPDATE SET seen_at = excluded.seen_at, "
    "expires_at = excluded.expires_at WHERE replay_key.expires_at <= excluded.seen_at"
)


def _claim_in_file(
    conn: sqlite3.Connection,
    scope: str,
    keys: list[str],
    now: float,
    window: timedelta,
    purge: bool,
) -> bool:
    """Every key claimed in one transaction of the side file; True if each was new."""
    expires = now + window.total_seconds()
    with immediate(conn):
        if purge:
            conn.execute(_SQLITE_PURGE, (now,))
        claimed = [conn.execute(_SQLITE_CLAIM, (scope, k, now, expires)).rowcount for k in keys]
    return all(n == 1 for n in claimed)


def _purge_file(conn: sqlite3.Connection, now: float) -> int:
    return write(conn, _SQLITE_PURGE, [(now,)])
