"""A request is acted on once within the window: replicas share what they saw, old keys go."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.clock import FixedClock
from bot.store.cache import SharedCache
from bot.store.db import Database
from bot.store.replay import WINDOW, ReplayGuard
from bot.store.sidecar import side_path
from tests.conftest import REDIS_URL, service_missing


@pytest.fixture
async def made() -> AsyncIterator[list[ReplayGuard]]:
    """Guards the test made, closed after it (each may hold a connection of its own)."""
    guards: list[ReplayGuard] = []
    yield guards
    for guard in guards:
        await guard.close()


def _guard(
    made: list[ReplayGuard], db: Database, cache: SharedCache, clock: FixedClock, **kw: str
) -> ReplayGuard:
    made.append(ReplayGuard(db, cache, clock, **kw))
    return made[-1]


async def _rows(db: Database) -> list[tuple[str, str]]:
    """The keys remembered: in the side file on SQLite, in ``replay_key`` on Postgres."""
    path = side_path(db.url, "replay")
    if path is not None:
        if not path.exists():
            return []
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT scope, key FROM replay_key ORDER BY rowid").fetchall()
    async with db.transaction(read_only=True) as session:
        found = await session.exec(sa.text("SELECT scope, key FROM replay_key ORDER BY id"))  # type: ignore[call-overload]
        return [tuple(r) for r in found.all()]


async def test_a_repeat_is_recognised_once_per_window(
    made: list[ReplayGuard], db: Database, clock: FixedClock
) -> None:
    guard = _guard(made, db, SharedCache(None), clock, scope="slack")
    assert await guard.first(["sig:a", "event:E1"]) is True
    assert await guard.first(["sig:a"]) is False  # the same signed request again
    assert await guard.first(["sig:b", "event:E1"]) is False  # a retry: new signature, same id
    assert await guard.first(["sig:c", "event:E2"]) is True
    assert await guard.first([]) is True  # nothing to recognise it by: acted on
    clock.advance(WINDOW + timedelta(seconds=1))
    assert await guard.first(["sig:a"]) is True  # forgotten after the window


async def test_replicas_on_one_database_see_each_others_keys(
    made: list[ReplayGuard], database_url: str, clock: FixedClock
) -> None:
    one, two = Database(database_url), Database(database_url)
    try:
        first = _guard(made, one, SharedCache(None), clock, scope="slack")
        second = _guard(made, two, SharedCache(None), clock, scope="slack")
        assert await first.first(["sig:x"]) is True
        assert await second.first(["sig:x"]) is False
        assert await second.first(["sig:y"]) is True
        assert await first.first(["sig:y"]) is False
    finally:
        await one.dispose()
        await two.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_key_is_recorded_while_the_database_is_being_written(
    made: list[ReplayGuard], db: Database, database_url: str, clock: FixedClock
) -> None:
    # The intake folder holds SQLite's one write lock while it commits a round; a Slack
    # ack's replay check must not wait for it.
    guard = _guard(made, db, SharedCache(None), clock, scope="slack")
    writer = sqlite3.connect(str(make_url(database_url).database), timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        assert await asyncio.wait_for(guard.first(["sig:busy"]), 1.0) is True
        assert await asyncio.wait_for(guard.first(["sig:busy"]), 1.0) is False
    finally:
        writer.close()
    assert await _rows(db) == [("slack", "sig:busy")]


async def test_expired_keys_are_purged(
    made: list[ReplayGuard], db: Database, clock: FixedClock
) -> None:
    guard = _guard(made, db, SharedCache(None), clock, scope="slack")
    for n in range(20):
        assert await guard.first([f"sig:{n}"])
    assert len(await _rows(db)) == 20
    clock.advance(WINDOW + timedelta(minutes=1))
    assert await guard.first(["sig:new"]) is True
    assert await _rows(db) == [("slack", "sig:new")]  # the table holds one window at most
    clock.advance(WINDOW + timedelta(minutes=1))
    assert await guard.purge() == 1
    assert await _rows(db) == []


async def test_a_long_key_is_stored_by_its_digest(
    made: list[ReplayGuard], db: Database, clock: FixedClock
) -> None:
    guard = _guard(made, db, SharedCache(None), clock)
    key = "k" * 500
    assert await guard.first([key]) is True
    assert await guard.first([key]) is False
    assert await guard.first(["k" * 499 + "j"]) is True
    (stored, _) = await _rows(db)
    assert stored[1].startswith("sha256:")


@pytest.fixture
def shared() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(
            f"Redis at {REDIS_URL} ({error})",
            "Start it (redis-server --daemonize yes) or set WARROOM_TEST_REDIS.",
        )
    return f"test:{uuid.uuid4().hex}:"


async def test_with_redis_replicas_share_keys_without_the_database(
    made: list[ReplayGuard], db: Database, clock: FixedClock, shared: str
) -> None:
    one, two = SharedCache(REDIS_URL, prefix=shared), SharedCache(REDIS_URL, prefix=shared)
    try:
        first = _guard(made, db, one, clock, scope="slack")
        second = _guard(made, db, two, clock, scope="slack")
        assert await first.first(["sig:r", "event:R1"]) is True
        assert await second.first(["sig:other", "event:R1"]) is False
        assert await second.first(["sig:r"]) is False
        assert await _rows(db) == []  # Redis answered: the database was not needed
        ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{shared}replay:slack:sig:r")
        assert 0 < ttl <= int(WINDOW.total_seconds())
    finally:
        await one.close()
        await two.close()


async def test_a_down_redis_falls_back_to_the_database(
    made: list[ReplayGuard], db: Database, clock: FixedClock
) -> None:
    down = SharedCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        guard = _guard(made, db, down, clock, scope="slack")
        assert await guard.first(["sig:d"]) is True
        assert await guard.first(["sig:d"]) is False
        assert await _rows(db) == [("slack", "sig:d")]
    finally:
        await down.close()
