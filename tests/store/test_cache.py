"""Redis is used when it answers and skipped, never fatal, when it does not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from bot.store.cache import SharedCache
from tests.conftest import REDIS_URL, service_missing


@pytest.fixture
async def cache() -> AsyncIterator[SharedCache]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(
            f"Redis at {REDIS_URL} ({error})",
            "Start it (redis-server --daemonize yes) or set WARROOM_TEST_REDIS.",
        )
    shared = SharedCache(REDIS_URL, prefix=f"test:{uuid.uuid4().hex}:")
    yield shared
    await shared.close()


async def test_marks_are_shared_between_replicas(cache: SharedCache) -> None:
    other_replica = SharedCache(REDIS_URL, prefix=cache.prefix)
    assert await cache.status() == "ok"
    assert await other_replica.seen("delivery:abc") is False
    await cache.mark("delivery:abc", 60)
    assert await other_replica.seen("delivery:abc") is True
    assert await other_replica.seen("delivery:def") is False
    await other_replica.close()


async def test_down_redis_fails_open() -> None:
    down = SharedCache("redis://127.0.0.1:1/0", timeout=0.2)
    assert (await down.status()).startswith("unavailable")
    await down.mark("x", 60)
    assert await down.seen("x") is False
    assert await down.seen("x") is False  # short-circuits while marked down
    await down.close()


async def test_unconfigured_is_not_an_error() -> None:
    none = SharedCache(None)
    assert await none.status() == "not configured"
    await none.mark("x", 60)
    assert await none.seen("x") is False
