"""The paging port: what the core asks of an on-call pager (PagerDuty, Opsgenie).

::

    PageError
    ├── PageThrottled    429: not applied; try again after ``retry_after`` seconds
    ├── PageUnavailable  connection lost, timeout, 5xx; ``uncertain`` if it may have been applied
    └── PageRefused      a permanent refusal (400: the event is invalid, an unknown target)

Every alert is named by a ``dedup_key`` (the incident's key): a trigger for an alert already
open, an acknowledge or a resolve sent twice change nothing upstream, so a retry whose first
attempt may have gone through simply sends again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class PageError(Exception):
    """Base of the paging port's errors."""


class PageThrottled(PageError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PageUnavailable(PageError):
    def __init__(self, message: str, *, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class PageRefused(PageError):
    """Trying again will not help: the message says why."""


@dataclass(frozen=True, slots=True)
class PageAlert:
    """What a trigger says about the incident; the adapter maps it onto its vendor's fields.

    ``rank`` is the severity's place in the scheme (0: the most severe level), so an adapter
    can map any scheme onto its own severities.
    """

    summary: str
    source: str
    severity: str
    rank: int
    at: datetime
    component: str | None = None
    link: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PageReceipt:
    dedup_key: str
    message: str = ""


class Pager(Protocol):
    async def trigger(self, target: str, dedup_key: str, alert: PageAlert) -> PageReceipt:
        """Open (or update) the alert ``dedup_key`` on ``target`` (a configured name)."""
        ...

    async def acknowledge(self, target: str, dedup_key: str) -> PageReceipt:
        """Acknowledge it: the target stops notifying and escalating."""
        ...

    async def resolve(self, target: str, dedup_key: str) -> PageReceipt:
        """Resolve it."""
        ...
