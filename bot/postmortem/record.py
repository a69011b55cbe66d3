"""The incident's timeline as the draft reads it: its events, grouped by kind in one pass.

Both the section builders (:mod:`bot.postmortem.build`) and the judgements drawn from
the record (:mod:`bot.postmortem.facts`) ask the timeline questions through :class:`ByKind`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

STEP_KINDS = ("step_run", "step_refused", "step_approved")


class Event(NamedTuple):
    id: int
    at: datetime
    kind: str
    actor: str
    text: str
    data: Mapping[str, Any]


class ByKind:
    """The timeline's events grouped by kind in one pass (most questions ask about few)."""

    def __init__(self, events: Sequence[Event]) -> None:
        self.groups: dict[str, list[Event]] = {}
        for e in events:
            self.groups.setdefault(e.kind, []).append(e)

    def of(self, *kinds: str) -> list[Event]:
        """The events of ``kinds``, oldest first."""
        found = [e for k in kinds for e in self.groups.get(k, ())]
        return sorted(found, key=lambda e: (e.at, e.id)) if len(kinds) > 1 else found

    def count(self, *kinds: str) -> int:
        return sum(len(self.groups.get(k, ())) for k in kinds)
