"""A request is acted on once within the window: replicas share what they saw, old keys go."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from bot.clock import FixedClock
from bot.store.cache import SharedCache
from bot.store.db import Database
from bot.store.replay import WINDOW, ReplayGuard
from tests.conftest import REDIS_URL, service_missing


async def _rows(db: Database) -> list[tuple[str, str]]:
    async with db.transaction(read_only=True) as session:
        found = await session.exec(sa.text("SELECT scope, key FROM replay_key ORDER BY id"))  # type: ignore[call-overload]
        return [tuple(r) for r in found.all()]


async def test_a_repeat_is_recognised_once_per_window(db: Database, clock: FixedClock) -> None:
    guard = ReplayGuard(db, SharedCache(None), clock, scope="slack")
    assert await guard.first(["sig:a", "event:E1"]) is True
    assert await guard.first(["sig:a"]) is False  # the same signed request again
    assert await guard.first(["sig:b", "event:E1"]) is False  # a retry: new signature, same id
    assert await guard.first(["sig:c", "event:E2"]) is True
    assert await guard.first([]) is True  # nothing to recognise it by: acted on
    clock.advance(WINDOW + timedelta(seconds=1))
    assert await guard.first(["sig:a"]) is True  # forgotten after the window


async def test_replicas_on_one_database_see_each_others_keys(
    database_url: str, clock: FixedClock
) -> None:
    one, two = Database(database_url), Database(database_url)
    try:
        first = ReplayGuard(one, SharedCache(None), clock, scope="slack")
        second = ReplayGuard(two, SharedCache(None), clock, scope="slack")
        assert await first.first(["sig:x"]) is True
        assert await second.first(["sig:x"]) is False
        assert await second.first(["sig:y"]) is True
        assert await first.first(["sig:y"]) is False
    finally:
        await one.dispose()
        await two.dispose()


async def test_expired_keys_are_purged(db: Database, clock: FixedClock) -> None:
    guard = ReplayGuard(db, SharedCache(None), clock, scope="slack")
    for n in range(20):
        assert await guard.first([f"sig:{n}"])
    assert len(await _rows(db)) == 20
    clock.advance(WINDOW + timedelta(minutes=1))
    assert await guard.first(["sig:new"]) is True
    assert await _rows(db) == [("slack", "sig:new")]  # the table holds one window at most
    clock.advance(WINDOW + timedelta(minutes=1))
    assert await guard.purge() == 1
    assert await _rows(db) == []


async def test_a_long_key_is_stored_by_its_digest(db: Database, clock: FixedClock) -> None:
    guard = ReplayGuard(db, SharedCache(None), clock)
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
    db: Database, clock: FixedClock, shared: str
) -> None:
    one, two = SharedCache(REDIS_URL, prefix=shared), SharedCache(REDIS_URL, prefix=shared)
    try:
        first = ReplayGuard(db, one, clock, scope="slack")
        second = ReplayGuard(db, two, clock, scope="slack")
        assert await first.first(["sig:r", "event:R1"]) is True
        assert await second.first(["sig:other", "event:R1"]) is False
        assert await second.first(["sig:r"]) is False
        assert await _rows(db) == []  # Redis answered: the database was not needed
        ttl = redis.Redis.from_url(REDIS_URL).ttl(f"{shared}replay:slack:sig:r")
        assert 0 < ttl <= int(WINDOW.total_seconds())
    finally:
        await one.close()
        await two.close()


async def test_a_down_redis_falls_back_to_the_database(db: Database, clock: FixedClock) -> None:
    down = SharedCache("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        guard = ReplayGuard(db, down, clock, scope="slack")
        assert await guard.first(["sig:d"]) is True
        assert await guard.first(["sig:d"]) is False
        assert await _rows(db) == [("slack", "sig:d")]
    finally:
        await down.close()
