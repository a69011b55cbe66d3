"""Redis, for what replicas must share and fast: dedup marks and short-lived flags.

Redis is optional and fail-open, as the runbooks ask of a cache: when it is not
configured or does not answer, every method degrades to "I don't know" and the
database (the source of truth) decides. Nothing that matters lives only here.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_RETRY_AFTER_S = 5.0


class SharedCache:
    def __init__(self, url: str | None, *, timeout: float = 0.5, prefix: str = "warroom:") -> None:
        self.url = url
        self.prefix = prefix
        self._client: redis.Redis | None = (
            redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            if url
            else None
        )
        self._down_until = 0.0

    @property
    def configured(self) -> bool:
        return self._client is not None

    async def status(self) -> str:
        """``ok``, ``not configured`` or ``unavailable: <reason>`` (for /readyz)."""
        if self._client is None:
            return "not configured"
        try:
            await self._client.ping()
        except (RedisError, OSError) as error:
            return f"unavailable: {error}"
        self._down_until = 0.0
        return "ok"

    async def seen(self, key: str) -> bool:
        """Whether ``key`` was marked; False when unknown (Redis absent or down)."""
        if not self._usable():
            return False
        try:
            return bool(await self._client.exists(self.prefix + key))  # type: ignore[union-attr]
        except (RedisError, OSError) as error:
            self._went_down(error)
            return False

    async def mark(self, key: str, ttl_s: int) -> None:
        """Remember ``key`` for ``ttl_s`` seconds, shared by every replica; best effort."""
        if not self._usable():
            return
        try:
            await self._client.set(self.prefix + key, b"1", ex=ttl_s)  # type: ignore[union-attr]
        except (RedisError, OSError) as error:
            self._went_down(error)

    def _usable(self) -> bool:
        return self._client is not None and time.monotonic() >= self._down_until

    def _went_down(self, error: BaseException) -> None:
        # Skip Redis for a few seconds instead of paying its timeout on every request.
        self._down_until = time.monotonic() + _RETRY_AFTER_S
        log.warning("redis unavailable, continuing without it: %s", error)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
