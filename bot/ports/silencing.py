"""The silencing port: what the core asks of an alert manager (Alertmanager today).

::

    SilenceError
    ├── Unavailable   connection lost, timeout, 5xx; ``uncertain`` if it may have been applied
    └── Refused       a permanent refusal (bad matchers, unknown target, 4xx)

Every silence's comment carries a ``marker`` (see :class:`~bot.incidents.silences.SilencePlan`).
A retry of a create whose outcome is uncertain first asks :meth:`Silencer.find`, so a
silence is never created twice. Expiring one already expired or gone is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.incidents.silences import Matcher


class SilenceError(Exception):
    """Base of the silencing port's errors."""


class Unavailable(SilenceError):
    def __init__(self, message: str, *, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class Refused(SilenceError):
    """Trying again will not help: the message says why."""


@dataclass(frozen=True, slots=True)
class SilenceRef:
    id: str
    target: str


class Silencer(Protocol):
    async def create(
        self,
        target: str,
        matchers: Sequence[Matcher],
        *,
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> SilenceRef:
        """Create a silence on ``target`` (a configured name); return its id."""
        ...

    async def find(self, target: str, marker: str) -> SilenceRef | None:
        """A silence still in force whose comment carries ``marker``, if any."""
        ...

    async def expire(self, target: str, silence_id: str) -> bool:
        """Expire it now; False if it had already ended or is unknown."""
        ...
