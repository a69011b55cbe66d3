"""An incident's public status page incidents, as the card, the page and the post-mortem show them.

Each is an :class:`~bot.store.models.ExternalRecord` of kind ``statuspage`` and ref
``statuspage:<target>`` (one per configured target), written by the status page delivery
(:mod:`bot.delivery.statuspage`) when the vendor answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import UserError
from bot.store.models import ExternalRecord

KIND = "statuspage"
#: The timeline event of a publication the vendor took (its data: target, url, phase).
PUBLISHED = "statuspage_published"
VENDOR = "statuspage"


Action = Literal["open", "update", "resolve"]
ACTIONS: tuple[Action, ...] = get_args(Action)


def ref(target: str) -> str:
    return f"{KIND}:{target}"


@dataclass(frozen=True, slots=True)
class StatusPageLink:
    """A status incident: where the public reads it and the phase it last showed."""

    target: str
    url: str | None
    phase: str
    resolved: bool


def from_events(events: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[StatusPageLink, ...]:
    """The links as the timeline's ``statuspage_published`` events (kind, data) left them."""
    found: dict[str, StatusPageLink] = {}
    for kind, data in events:
        if kind != PUBLISHED or not data.get("target"):
            continue
        target = str(data["target"])
        url = data.get("url") or (found[target].url if target in found else None)
        phase = str(data.get("phase") or "")
        found[target] = StatusPageLink(
            target, str(url) if url else None, phase, phase == "resolved"
        )
    return tuple(found.values())


async def status_pages(session: AsyncSession, incident_id: int) -> tuple[StatusPageLink, ...]:
    query = (
        select(ExternalRecord)
        .where(col(ExternalRecord.incident_id) == incident_id, col(ExternalRecord.kind) == KIND)
        .order_by(col(ExternalRecord.id))
    )
    return tuple(
        StatusPageLink(r.target, r.url, r.state, r.done) for r in (await session.exec(query)).all()
    )


@dataclass(frozen=True, slots=True)
class StatusPlan:
    """What a confirmation would publish: shown to the responder first."""

    key: str
    target: str
    action: Action
    at: datetime  # when the preview was rendered: its "Next Update" times are from then
    nonce: str
    name: str  # the status incident's name (the incident's title)
    body: str  # the message, rendered from the runbook's template
    phase: str  # investigating, identified, monitoring or resolved
    impact: str  # none, minor, major or critical
    components: dict[str, str] = field(default_factory=dict)  # component id → its status
    #: True when ``open`` was asked but a status incident is open already (so: an update).
    became_update: bool = False

    @property
    def digest(self) -> str:
        parts = [self.action, self.name, self.body, self.phase, self.impact]
        parts += [f"{k}={v}" for k, v in sorted(self.components.items())]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]

    def token(self) -> str:
        """The Confirm button's value: enough to render the same text again and compare."""
        stamp = int(self.at.timestamp())
        return f"{self.key}|{self.target}|{self.action}|{stamp}|{self.nonce}|{self.digest}"


@dataclass(frozen=True, slots=True)
class PlanToken:
    key: str
    target: str
    action: Action
    at: datetime
    nonce: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> PlanToken:
        parts = text.split("|")
        if len(parts) != 6 or parts[2] not in ACTIONS or not parts[3].isdigit():
            raise UserError("That status page preview cannot be read: ask for a new one.")
        key, target, action, stamp, nonce, digest = parts
        at = datetime.fromtimestamp(int(stamp), tz=UTC)
        return cls(key, target, action, at, nonce, digest)  # type: ignore[arg-type]
