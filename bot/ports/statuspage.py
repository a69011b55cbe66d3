"""The status page port: what the core asks of a public status page (Atlassian Statuspage).

A status page incident is opened once per incident and target, then updated and resolved. Each
notice's ``marker`` (the incident key) lets a retry whose first attempt may have gone through
look for the incident it made (:meth:`StatusPage.find`) before opening a second. Errors are
those of :mod:`bot.ports.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

#: The public phases of an incident, as status pages name them.
Phase = Literal["investigating", "identified", "monitoring", "resolved"]
#: How bad it is for the public: status pages' impact levels.
Impact = Literal["none", "minor", "major", "critical"]


@dataclass(frozen=True, slots=True)
class StatusNotice:
    """One public message: the name of the status incident and this update's text.

    ``components`` maps the vendor's component ids to the status they show now (e.g.
    ``major_outage``), from the configured mapping of the incident's services.
    """

    marker: str
    name: str
    body: str
    phase: Phase
    impact: Impact
    components: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusRef:
    """A status incident: the vendor's id, its public link, its phase, and (when the vendor
    said) the text of its latest message, so a retry can tell whether its notice went out."""

    id: str
    url: str | None
    phase: str
    last_body: str | None = None


class StatusPage(Protocol):
    async def open(self, target: str, notice: StatusNotice) -> StatusRef:
        """Open a status incident on ``target`` (a configured name) with the first message."""
        ...

    async def update(self, target: str, incident_id: str, notice: StatusNotice) -> StatusRef:
        """Post a message (and phase, components) to it; ``phase="resolved"`` resolves it."""
        ...

    async def find(self, target: str, marker: str) -> StatusRef | None:
        """The unresolved status incident that carries ``marker``, if any."""
        ...
