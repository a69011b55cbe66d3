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
    other_replica = SharedCache("redis://127.0.0.1:1/0", timeout=0.2)
    assert (await down.status()).startswith("unavailable")
    await down.mark("x", 60)
    assert await other_replica.seen("x") is False  # unknown: the database decides
    assert await other_replica.seen("x") is False  # short-circuits while marked down
    assert await down.seen("x") is True  # its own mark, remembered in memory
    await down.close()
    await other_replica.close()


async def test_unconfigured_is_not_an_error() -> None:
    none = SharedCache(None)
    assert await none.status() == "not configured"
    await none.mark("x", 60)
    assert await none.seen("x") is True  # this process's own marks need no Redis
    assert await SharedCache(None).seen("x") is False  # another process's are unknown


async def test_own_marks_expire_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.store import cache as cache_module

    monkeypatch.setattr(cache_module, "LOCAL_MARKS", 3)
    local = SharedCache(None)
    await local.mark("gone", 0)
    assert await local.seen("gone") is False  # expired at once
    for key in "abcd":
        await local.mark(key, 60)
    assert [await local.seen(k) for k in "abcd"] == [False, True, True, True]  # oldest forgotten
