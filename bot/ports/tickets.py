"""The ticket port: what the core asks of an issue tracker (Jira Cloud, GitHub Issues).

A follow-up is filed once per target; its ``marker`` (incident key and follow-up id) is put in
the ticket so a retry whose first attempt may have gone through finds it (:meth:`Tracker.find`)
instead of filing a second. :meth:`Tracker.read` reads the ticket's state back, sending the last
``version`` (an ETag, an ``updated`` time) so an unchanged ticket costs a conditional request.
Errors are those of :mod:`bot.ports.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TicketDraft:
    """A follow-up as a ticket. ``severity`` is the incident's (``P1``) and ``rank`` its place
    in the scheme (0: the most severe), so an adapter can map either onto its tracker's
    priorities. ``body`` is plain text, paragraphs apart by blank lines; ``link`` the
    incident's page. ``marker`` is made of letters, digits and ``-`` (a Jira label can hold
    it)."""

    marker: str
    title: str
    body: str
    rank: int
    severity: str = ""
    labels: Sequence[str] = field(default_factory=tuple)
    link: str | None = None


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A ticket as last read: ``key`` is what people call it (``OPS-12``, ``#34``)."""

    id: str
    key: str
    url: str | None
    state: str
    done: bool
    version: str = ""


class Tracker(Protocol):
    async def file(self, target: str, draft: TicketDraft) -> TicketRef:
        """File the ticket on ``target`` (a configured name)."""
        ...

    async def find(self, target: str, marker: str) -> TicketRef | None:
        """The ticket that carries ``marker``, if any."""
        ...

    async def read(self, target: str, ticket: TicketRef) -> TicketRef:
        """Its state now (``ticket`` itself when unchanged since ``ticket.version``)."""
        ...
