"""Redis is used when it answers and skipped, never fatal, when it does not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from bot.cache import SharedCache

from .conftest import REDIS_URL, service_missing


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


async def test_first_time_is_shared_through_redis(cache: SharedCache) -> None:
    other_replica = SharedCache(REDIS_URL, prefix=cache.prefix)
    assert await cache.status() == "ok"
    assert await cache.first_time("alert:abc", 60) is True
    assert await other_replica.first_time("alert:abc", 60) is False
    assert await cache.first_time("alert:def", 60) is True
    await other_replica.close()


async def test_down_redis_fails_open() -> None:
    down = SharedCache("redis://127.0.0.1:1/0", timeout=0.2)
    assert (await down.status()).startswith("unavailable")
    assert await down.first_time("x", 60) is None
    assert await down.first_time("x", 60) is None  # short-circuits while marked down
    await down.close()


async def test_unconfigured_is_not_an_error() -> None:
    none = SharedCache(None)
    assert await none.status() == "not configured"
    assert await none.first_time("x", 60) is None
