"""Slack's rate limits, respected before Slack has to say so.

Per method, the tier's budget (Tier 2 ≈ 20/min, Tier 3 ≈ 50/min, Tier 4 ≈ 100/min);
``chat.postMessage`` about one a second per channel. Each replica paces itself with token
buckets; with Redis configured, a 429's ``Retry-After`` is shared, so every replica holds
off that method until Slack is ready again (fail-open: without Redis, each replica learns
of the 429 itself).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.store.cache import SharedCache

TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS = {
    "conversations.create": 2,
    "conversations.setTopic": 2,
    "conversations.setPurpose": 2,
    "conversations.archive": 2,
    "conversations.list": 2,
    "pins.add": 2,
    "bookmarks.add": 2,
    "conversations.invite": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.join": 3,
    "chat.update": 3,
    "users.lookupByEmail": 3,
    "reactions.add": 3,
    "chat.postEphemeral": 4,
    "users.info": 4,
    "views.open": 4,
    "views.update": 4,
    "views.push": 4,
    "views.publish": 4,  # Slack's method page; methods.txt does not list it
    "users.conversations": 3,
    "auth.test": 4,
    "chat.getPermalink": 4,
    "usergroups.users.list": 2,
}
POST_PER_SECOND = 1.0
POST_BURST = 3.0


@dataclass
class _Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    stamp: float
    hold_until: float = 0.0

    def take(self, now: float) -> float:
        """Seconds to wait before a call may go (0 when it may go now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if now < self.hold_until:
            return self.hold_until - now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateGate:
    def __init__(self, cache: SharedCache | None = None, *, scale: float = 1.0) -> None:
        self.cache = cache
        self.scale = scale  # >1 makes budgets larger (tests with a fast fake)
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def _bucket(self, method: str, channel: str | None) -> _Bucket:
        key = (method, channel if method == "chat.postMessage" else None)
        bucket = self._buckets.get(key)
        if bucket is None:
            if method == "chat.postMessage":
                rate, burst = POST_PER_SECOND, POST_BURST
            else:
                per_minute = TIER_PER_MINUTE[METHOD_TIERS.get(method, 3)]
                rate, burst = per_minute / 60.0, max(1.0, per_minute / 6.0)
            rate *= self.scale
            burst *= max(1.0, self.scale)
            bucket = _Bucket(rate, burst, burst, time.monotonic())
            self._buckets[key] = bucket
        return bucket

    async def wait(self, method: str, channel: str | None = None) -> None:
        while True:
            async with self._lock:
                delay = self._bucket(method, channel).take(time.monotonic())
            delay = max(delay, await self._shared_hold(method))
            if delay <= 0:
                return
            await asyncio.sleep(min(delay, 30.0))

    def back_off(self, method: str, channel: str | None, seconds: float) -> None:
        bucket = self._bucket(method, channel)
        bucket.hold_until = max(bucket.hold_until, time.monotonic() + seconds)
        if self.cache is not None and self.cache.configured:
            task = asyncio.get_running_loop().create_task(self._share_hold(method, seconds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _share_hold(self, method: str, seconds: float) -> None:
        if self.cache is not None:
            await self.cache.mark(f"slack:hold:{method}", max(1, int(seconds + 0.999)))

    async def _shared_hold(self, method: str) -> float:
        if self.cache is None or not self.cache.configured:
            return 0.0
        return 1.0 if await self.cache.seen(f"slack:hold:{method}") else 0.0
