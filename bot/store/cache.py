"""Redis, for what replicas must share and fast: dedup marks and short-lived flags.

Redis is optional and fail-open, as the runbooks ask of a cache: when it is not
configured or does not answer, every method degrades to "I don't know" and the
database (the source of truth) decides. Nothing that matters lives only here.

Marks this process made are also kept in memory (bounded, with their expiry), so a repeat
that this process has already seen is answered without a round trip, Redis or not.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_RETRY_AFTER_S = 5.0
#: How many of its own marks a process remembers (the oldest are forgotten first).
LOCAL_MARKS = 10_000


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
        #: key → (monotonic expiry, the note the marker left)
        self._local: OrderedDict[str, tuple[float, int]] = OrderedDict()

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
        if self.noted(key) is not None:
            return True
        if not self._usable():
            return False
        try:
            return bool(await self._client.exists(self.prefix + key))  # type: ignore[union-attr]
        except (RedisError, OSError) as error:
            self._went_down(error)
            return False

    def noted(self, key: str) -> int | None:
        """The note of ``key`` when this process marked it and the mark holds, else None."""
        held = self._local.get(key)
        if held is None:
            return None
        if held[0] > time.monotonic():
            return held[1]
        del self._local[key]
        return None

    async def mark(self, key: str, ttl_s: int, *, note: int = 0) -> None:
        """Remember ``key`` for ``ttl_s`` seconds, shared by every replica; best effort.
        ``note`` is kept with this process's own mark (:meth:`noted`)."""
        self._local[key] = (time.monotonic() + ttl_s, note)
        self._local.move_to_end(key)
        while len(self._local) > LOCAL_MARKS:
            self._local.popitem(last=False)
        if not self._usable():
            return
        try:
            await self._client.set(self.prefix + key, b"1", ex=ttl_s)  # type: ignore[union-attr]
        except (RedisError, OSError) as error:
            self._went_down(error)

    async def claim(self, key: str, ttl_s: int) -> bool | None:
        """Mark ``key`` unless it is marked, atomically across replicas.

        True if this call marked it, False if it was already marked, None when Redis cannot
        say (absent or down): the caller asks the database instead.
        """
        if not self._usable():
            return None
        try:
            marked = await self._client.set(  # type: ignore[union-attr]
                self.prefix + key, b"1", ex=ttl_s, nx=True
            )
        except (RedisError, OSError) as error:
            self._went_down(error)
            return None
        return bool(marked)

    def _usable(self) -> bool:
        return self._client is not None and time.monotonic() >= self._down_until

    def _went_down(self, error: BaseException) -> None:
        # Skip Redis for a few seconds instead of paying its timeout on every request.
        self._down_until = time.monotonic() + _RETRY_AFTER_S
        log.warning("redis unavailable, continuing without it: %s", error)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
