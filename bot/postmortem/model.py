"""The post-mortem draft as a tree of frozen dataclasses, with no Slack, web or database
types in it: :class:`PostMortem` and the records its sections are made of.

:func:`bot.postmortem.build.build_postmortem` fills one in; templates read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.incidents.statuspage import StatusPageLink


@dataclass(frozen=True, slots=True)
class Span:
    """How long it took to reach a moment; None when it was not reached."""

    from_detection: timedelta | None
    from_declaration: timedelta | None


@dataclass(frozen=True, slots=True)
class Times:
    detected: datetime
    detected_from: str  # "alert", "record" or "declaration"
    declared: datetime
    acknowledged: datetime | None
    acknowledged_by: str | None
    mitigated: datetime | None
    resolved: datetime | None
    as_of: datetime

    def _span(self, moment: datetime | None) -> Span:
        if moment is None:
            return Span(None, None)
        return Span(moment - self.detected, moment - self.declared)

    @property
    def to_declare(self) -> timedelta:
        return self.declared - self.detected

    @property
    def to_acknowledge(self) -> Span:
        return self._span(self.acknowledged)

    @property
    def to_mitigate(self) -> Span:
        return self._span(self.mitigated)

    @property
    def to_resolve(self) -> Span:
        return self._span(self.resolved)

    @property
    def ongoing(self) -> bool:
        return self.resolved is None

    @property
    def duration(self) -> timedelta:
        """Detection to resolution (to ``as_of`` while open)."""
        return (self.resolved or self.as_of) - self.detected


@dataclass(frozen=True, slots=True)
class SeverityChange:
    at: datetime
    actor: str
    previous: str | None  # None for the severity the incident was declared with
    level: str
    source: str  # "person", "rule" or "default"
    reason: str
    applied: bool  # False: automation suggested it but a person's choice was kept


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    roles: tuple[str, ...]
    actions: int
    kinds: tuple[tuple[str, int], ...]
    automation: bool


@dataclass(frozen=True, slots=True)
class StepRun:
    run_id: str
    runbook: str
    step: str
    kind: str  # "diagnostic" or "mitigation"
    target: str
    params: tuple[tuple[str, str], ...]
    outcome: str  # "ran", "refused", or "approved" (not run yet)
    grade: str | None  # "green", "yellow", "red", "error"
    summary: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    duration_ms: int | None
    requested_by: str | None
    approved_by: tuple[str, ...]
    confirmed_by: str | None
    requested_at: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class Pinned:
    at: datetime
    author: str
    text: str
    permalink: str | None


@dataclass(frozen=True, slots=True)
class SentUpdate:
    at: datetime
    actor: str
    status: str
    progress: str
    impact: str
    eta: str
    text: str  # as sent


@dataclass(frozen=True, slots=True)
class SentMessage:
    at: datetime
    channel: str
    what: str  # "initial", "update", "resolution", "announcement", "reminder"…
    delivery: str  # "sent", "pending", "failed"
    text: str


@dataclass(frozen=True, slots=True)
class ActionItem:
    number: int
    text: str
    owner: str | None
    status: str
    url: str | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    name: str
    source: str
    status: str
    count: int
    first_seen: datetime
    last_seen: datetime
    started: datetime | None
    summary: str
    links: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor: str
    text: str
    repeats: int = 1
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResponseTime:
    name: str
    span: Span
    target: timedelta | None = None  # the severity's response time, for acknowledging
    level: str | None = None  # that severity
    met: bool | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class CheckItem:
    text: str
    done: bool
    note: str


@dataclass(frozen=True, slots=True)
class PostMortem:
    key: str
    title: str
    service: str | None
    status: str
    is_open: bool
    severity: str
    severity_label: str
    peak_severity: str
    summary: str
    impact: str
    root_cause: str
    resolution: str
    declared_by: str
    channel: str | None
    commander: str | None
    communications: str | None
    times: Times
    severity_history: tuple[SeverityChange, ...]
    people: tuple[Person, ...]
    diagnostics: tuple[StepRun, ...]
    diagnostics_omitted: tuple[tuple[str, int], ...]  # (grade, runs not shown)
    mitigations: tuple[StepRun, ...]
    mitigations_omitted: tuple[tuple[str, int], ...]
    pinned: tuple[Pinned, ...]
    updates: tuple[SentUpdate, ...]
    messages: tuple[SentMessage, ...]
    action_items: tuple[ActionItem, ...]
    alerts: tuple[AlertRecord, ...]
    timeline: tuple[TimelineEntry, ...]
    timeline_omitted: tuple[tuple[str, int], ...]
    root_cause_hints: tuple[str, ...]
    went_well: tuple[str, ...]
    went_poorly: tuple[str, ...]
    response_times: tuple[ResponseTime, ...]
    metrics: tuple[Metric, ...]
    checklist_during: tuple[CheckItem, ...]
    checklist_after: tuple[CheckItem, ...]
    review_by: datetime | None
    reopened: int
    generated_at: datetime
    #: The public status page incidents (bot.incidents.statuspage): target, link, last phase.
    status_pages: tuple[StatusPageLink, ...] = ()

    @property
    def responders(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if not p.automation)

    @property
    def automation(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.automation)
