"""Silences of an incident's alerts, as data: matchers, the previewed plan, the open silences.

Nothing here calls a vendor: the plan is what a responder previews and confirms, the
silencing port (``bot.ports.silencing``) carries it out. A silence's life is told by the
timeline, and read back from it (no table of its own)::

    silence_requested   a person confirmed a plan; an outbox row will create it
    silenced            the silence exists (data: silence_id, target, ends, until_resolved)
    silence_failed      it could not be created (data: error)
    unsilence_requested a person asked to expire it
    unsilenced          it was expired (or had already ended)

A silence is open while it is ``silenced``, not ``unsilenced`` and its end is still ahead.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import InvalidInput
from bot.store.models import Alert, TimelineEvent

REQUESTED = "silence_requested"
SILENCED = "silenced"
FAILED = "silence_failed"
UNSILENCE_REQUESTED = "unsilence_requested"
UNSILENCED = "unsilenced"
KINDS = (REQUESTED, SILENCED, FAILED, UNSILENCE_REQUESTED, UNSILENCED)

#: The durations a responder may choose; ``until-resolved`` ends at resolution (expired then),
#: with this as its longest life should the incident stay open.
UNTIL_RESOLVED = "until-resolved"
UNTIL_RESOLVED_MAX = timedelta(days=7)
DURATIONS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    UNTIL_RESOLVED: UNTIL_RESOLVED_MAX,
}

OPERATORS = ("=", "!=", "=~", "!~")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_MATCHERS = 30
MAX_VALUE = 500


@dataclass(frozen=True, slots=True)
class Matcher:
    """``name op value``, as Alertmanager writes it (``=``, ``!=``, ``=~``, ``!~``)."""

    name: str
    value: str
    op: str = "="

    def __post_init__(self) -> None:
        if not _LABEL.fullmatch(self.name):
            raise InvalidInput(f"`{self.name[:40]}` is not a label name (letters, digits, _).")
        if self.op not in OPERATORS:
            raise InvalidInput(f"`{self.op}` is not a matcher operator: use = != =~ !~.")
        if len(self.value) > MAX_VALUE:
            raise InvalidInput(f"The value of `{self.name}` is longer than {MAX_VALUE} characters.")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as error:
                raise InvalidInput(
                    f"`{self.name}{self.op}` is not a valid regex: {error}"
                ) from None

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def common_labels(alerts: Iterable[Alert]) -> dict[str, str]:
    """The labels every alert has with the same value (Alertmanager's ``commonLabels``).

    Alertmanager's own labels are used (``raw.labels``), not those an endpoint merged in:
    only they match in Alertmanager.
    """
    common: dict[str, str] | None = None
    for alert in alerts:
        raw = alert.raw.get("labels") if isinstance(alert.raw, dict) else None
        labels = {
            str(k): str(v) for k, v in (raw if isinstance(raw, dict) else alert.labels).items()
        }
        common = (
            labels if common is None else {k: v for k, v in common.items() if labels.get(k) == v}
        )
    return dict(sorted((common or {}).items()))


def merge_matchers(labels: dict[str, str], given: Sequence[Matcher]) -> tuple[Matcher, ...]:
    """The group's labels as equality matchers; a given matcher replaces the label it names."""
    named = {m.name for m in given}
    merged = [Matcher(k, v) for k, v in labels.items() if k not in named] + list(given)
    if not merged:
        raise InvalidInput(
            "No matchers: the incident's alerts share no label. Name some, e.g. "
            '`/incident silence 1h alertname="HighLatency"`.'
        )
    if len(merged) > MAX_MATCHERS:
        raise InvalidInput(f"More than {MAX_MATCHERS} matchers: name fewer labels.")
    if all((m.is_regex and m.value in ("", ".*")) or not m.is_equal for m in merged):
        raise InvalidInput("These matchers would match every alert: add one that must be equal.")
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class SilencePlan:
    """A silence as previewed: confirmed as is (the ``nonce`` makes a double click one request)."""

    key: str
    target: str
    duration: str
    matchers: tuple[Matcher, ...]
    comment: str
    nonce: str

    @property
    def until_resolved(self) -> bool:
        return self.duration == UNTIL_RESOLVED

    @property
    def marker(self) -> str:
        """Written in the comment: finds the silence again after an uncertain call."""
        return f"warroom:{self.nonce}-{self.duration}"

    def with_duration(self, duration: str) -> SilencePlan:
        return SilencePlan(
            self.key, self.target, duration_of(duration), self.matchers, self.comment, self.nonce
        )

    def full_comment(self) -> str:
        return f"{self.comment} [{self.marker}]"

    def ends(self, starts: datetime) -> datetime:
        return starts + DURATIONS[self.duration]

    def token(self) -> str:
        """The plan as compact JSON (a button's value), read back by :meth:`from_token`."""
        return json.dumps(
            {
                "k": self.key,
                "t": self.target,
                "d": self.duration,
                "m": [[m.name, m.op, m.value] for m in self.matchers],
                "c": self.comment,
                "n": self.nonce,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_token(cls, token: str) -> SilencePlan:
        try:
            data = json.loads(token)
            matchers = tuple(Matcher(str(n), str(v), str(o)) for n, o, v in data["m"])
            plan = cls(
                str(data["k"]),
                str(data["t"]),
                duration_of(str(data["d"])),
                matchers,
                str(data["c"]),
                str(data["n"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidInput(f"This silence preview cannot be read ({error}).") from None
        if not plan.matchers or not re.fullmatch(r"[0-9a-f]{8,32}", plan.nonce):
            raise InvalidInput("This silence preview is incomplete: preview it again.")
        return plan

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_hex(6)


def duration_of(word: str) -> str:
    """``1h``, ``4h`` or ``until-resolved`` (also written ``until_resolved``), normalised."""
    word = word.strip().lower().replace("_", "-")
    if word in ("untilresolved", "until-resolve", "resolved"):
        word = UNTIL_RESOLVED
    if word not in DURATIONS:
        raise InvalidInput(
            f"`{word[:20]}` is not a silence duration: use 1h, 4h or until-resolved."
        )
    return word


@dataclass(frozen=True, slots=True)
class OpenSilence:
    silence_id: str
    target: str
    ends: datetime
    until_resolved: bool
    created_by: str
    matchers: tuple[str, ...]


async def open_silences(
    session: AsyncSession, incident_id: int, *, now: datetime | None = None
) -> list[OpenSilence]:
    """The incident's silences still in force, oldest first, read from its timeline."""
    now = now or datetime.now(UTC)
    query = (
        select(TimelineEvent)
        .where(
            col(TimelineEvent.incident_id) == incident_id,
            col(TimelineEvent.kind).in_([SILENCED, UNSILENCED]),
        )
        .order_by(col(TimelineEvent.id))
    )
    found: dict[str, OpenSilence] = {}
    for event in (await session.exec(query)).all():
        data: dict[str, Any] = event.data
        sid = str(data.get("silence_id", ""))
        if event.kind == UNSILENCED:
            found.pop(sid, None)
            continue
        ends = datetime.fromisoformat(str(data["ends"]))
        found[sid] = OpenSilence(
            sid,
            str(data.get("target", "")),
            ends if ends.tzinfo else ends.replace(tzinfo=UTC),
            bool(data.get("until_resolved")),
            str(data.get("created_by", "")),
            tuple(str(m) for m in data.get("matchers", [])),
        )
    at = now if now.tzinfo else now.replace(tzinfo=UTC)
    return [s for s in found.values() if s.ends > at]
