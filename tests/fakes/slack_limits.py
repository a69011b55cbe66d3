"""Slack's rate limits as token buckets, and failures a test schedules on purpose.

Tiers (docs.slack.dev "Rate limits"): Tier 1 is 1+ a minute, Tier 2 20+, Tier 3 50+, Tier 4
100+. chat.postMessage allows about one message a second per channel, with short bursts. Each
method (chat.postMessage: each method and channel) gets a bucket holding a minute's worth of
calls (chat.postMessage: a small burst) that refills at the tier's rate. An empty bucket means
HTTP 429 with ``Retry-After``: whole seconds until the next call would pass.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass

TIER_PER_MINUTE = {"Tier 1": 1, "Tier 2": 20, "Tier 3": 50, "Tier 4": 100}
# Methods methods.txt does not list, with their tier from Slack's method pages.
EXTRA_TIERS = {"pins.list": "Tier 2", "bookmarks.list": "Tier 3", "views.publish": "Tier 4"}
# "Special" methods other than chat.postMessage: treated as Tier 4 (auth.test,
# chat.getPermalink are documented as "special" with generous limits).
SPECIAL_PER_MINUTE = 100
POST_MESSAGE_PER_SECOND = 1.0
POST_MESSAGE_BURST = 3


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: float


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets driven by an injected clock; ``scale`` > 1 makes the clock run faster."""

    def __init__(self, tiers: dict[str, str | None], *, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("rate_limit_scale must be positive")
        self.scale = scale
        self._tiers = {**EXTRA_TIERS, **{k: v for k, v in tiers.items() if v}}
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def limit_for(self, method: str) -> Limit:
        if method == "chat.postMessage":
            return Limit(POST_MESSAGE_PER_SECOND, POST_MESSAGE_BURST)
        per_minute = TIER_PER_MINUTE.get(self._tiers.get(method) or "", SPECIAL_PER_MINUTE)
        return Limit(per_minute / 60.0, float(per_minute))

    def acquire(self, method: str, key: str, now: float) -> int | None:
        """Take one call from the bucket; None if allowed, else the Retry-After in seconds."""
        limit = self.limit_for(method)
        scaled_now = now * self.scale
        bucket = self._buckets.get((method, key))
        if bucket is None:
            bucket = self._buckets[(method, key)] = _Bucket(limit.burst, scaled_now)
        elapsed = max(0.0, scaled_now - bucket.updated)
        bucket.tokens = min(limit.burst, bucket.tokens + elapsed * limit.per_second)
        bucket.updated = scaled_now
        # The tolerance absorbs float rounding of epoch-second clocks (about 1e-7 s).
        if bucket.tokens >= 1.0 - 1e-6:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return None
        wait = (1.0 - bucket.tokens) / limit.per_second / self.scale
        return max(1, math.ceil(wait - 1e-9))

    def reset(self) -> None:
        self._buckets.clear()


@dataclass(frozen=True)
class Failure:
    """One failed answer: HTTP status, Slack error code, Retry-After (for 429).

    ``after_effect`` makes the call take effect before the failure is answered: the client sees
    an error although the channel was created or the message posted (a lost response).
    """

    status: int = 500
    error: str = "internal_error"
    retry_after: int | None = None
    after_effect: bool = False

    @staticmethod
    def rate_limited(retry_after: int = 1) -> Failure:
        return Failure(429, "ratelimited", retry_after)

    @staticmethod
    def server_error(*, after_effect: bool = False) -> Failure:
        return Failure(500, "internal_error", after_effect=after_effect)

    @staticmethod
    def unavailable() -> Failure:
        return Failure(503, "service_unavailable")


class FailurePlan:
    """Failures a test scheduled for given methods, then random ones at ``failure_rate``."""

    def __init__(
        self, *, failure_rate: float = 0.0, seed: int = 0, lost_answers: float = 0.0
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0 or not 0.0 <= lost_answers <= 1.0:
            raise ValueError("failure_rate and lost_answers must be between 0 and 1")
        self.failure_rate = failure_rate
        # The share of random 500s whose call took effect first (the answer was lost).
        self.lost_answers = lost_answers
        self._rng = random.Random(seed)
        self._scheduled: dict[str, deque[Failure]] = {}

    def schedule(self, method: str, failure: Failure, times: int = 1) -> None:
        self._scheduled.setdefault(method, deque()).extend([failure] * times)

    def pending(self, method: str) -> int:
        return len(self._scheduled.get(method, ()))

    def clear(self) -> None:
        self._scheduled.clear()

    def take(self, method: str) -> Failure | None:
        queue = self._scheduled.get(method)
        if queue:
            return queue.popleft()
        if self.failure_rate and self._rng.random() < self.failure_rate:
            if self._rng.random() < 0.5:
                return Failure.rate_limited(self._rng.randint(1, 3))
            lost = bool(self.lost_answers) and self._rng.random() < self.lost_answers
            return Failure.server_error(after_effect=lost)
        return None
