"""The post-mortem draft: what the record says about one incident, computed once.

:func:`build_postmortem` reads the incident, its alerts, timeline, follow-ups and the
messages sent (one query per table, in one read-only transaction) and returns a
:class:`PostMortem`, a tree of frozen dataclasses with no Slack or web types in it.
:func:`render_markdown` renders one with ``postmortem.md.j2`` (which a user may
override from their templates directory); :func:`register_filters` adds the Markdown
filters that template needs to any Jinja2 environment.

The times, each measured from detection and from declaration::

    detected      the earliest of: the first alert's start, the incident's detected_at,
                  its declaration (on a tie, in that order of preference)
    acknowledged  incident.acknowledged_at (a person declaring has acknowledged)
    mitigated     incident.mitigated_at (status monitoring, or resolution)
    resolved      incident.resolved_at; while open, durations run to ``now``

A reopen clears the resolution, so the times are those of the last cycle; the
timeline keeps the earlier ones and the metrics count the reopens. Step runs are
read only from the timeline (``step_run``, ``step_refused``, ``step_approved``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jinja2
import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import Database
from bot.errors import IncidentNotFound, InvalidSeverity
from bot.incidents import EventKind, Incidents
from bot.models import Alert, FollowUp, Incident, OutboxRow, TimelineEvent, TranscriptEntry
from bot.severity import SeverityLevel, SeverityScheme
from bot.templating import Templates

TEMPLATE = "postmortem.md.j2"
#: Past this many entries the timeline keeps its key events and elides the rest.
TIMELINE_LIMIT = 500
#: The runbook's expectation (``Post-Mortem (Within 48 hours)``).
REVIEW_WITHIN = timedelta(hours=48)
MAX_ROWS = 10
MAX_COLUMNS = 8
MAX_MARKERS = 1000
#: Past this many runs in a section, the rest are counted, not shown (red first, then
#: errors, yellow and green; the earliest first within a grade).
EVIDENCE_LIMIT = 40
HINTS_FROM_RUNS = 10
STEP_KINDS = ("step_run", "step_refused", "step_approved")
#: Kinds a shortened timeline always lists: the lifecycle, updates and pins.
KEY_KINDS = frozenset(
    {k.value for k in EventKind if k is not EventKind.NOTE} | {"update", "pinned", "channel"}
)
#: Kinds whose ``data`` the draft reads; the others' is not even decoded.
_WITH_DATA = (
    *(k.value for k in (EventKind.DECLARED, EventKind.SEVERITY, EventKind.SEVERITY_KEPT)),
    *(k.value for k in (EventKind.STATUS, EventKind.ROLE)),
    *STEP_KINDS,
    "update",
    "pinned",
)
_GRADE_RANK = {"red": 0, "error": 1, "yellow": 2}
_NO_DATA: Mapping[str, Any] = MappingProxyType({})
_MESSAGE_KINDS = ("message", "announce", "alert_summary", "reminder")
_BOT = "warroom"


# -- the tree -----------------------------------------------------------------


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

    @property
    def responders(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if not p.automation)

    @property
    def automation(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.automation)


# -- reading ------------------------------------------------------------------


class _Event(NamedTuple):
    id: int
    at: datetime
    kind: str
    actor: str
    text: str
    data: Mapping[str, Any]


class _ByKind:
    """The timeline's events grouped by kind in one pass (most questions ask about few)."""

    def __init__(self, events: Sequence[_Event]) -> None:
        self.groups: dict[str, list[_Event]] = {}
        for e in events:
            self.groups.setdefault(e.kind, []).append(e)

    def of(self, *kinds: str) -> list[_Event]:
        """The events of ``kinds``, oldest first."""
        found = [e for k in kinds for e in self.groups.get(k, ())]
        return sorted(found, key=lambda e: (e.at, e.id)) if len(kinds) > 1 else found

    def count(self, *kinds: str) -> int:
        return sum(len(self.groups.get(k, ())) for k in kinds)


class _Run(NamedTuple):
    run: StepRun  # without its table yet
    rows: object  # as the step gave them
    columns: object


class _Sent(NamedTuple):
    id: int
    lane: str
    kind: str
    payload: dict[str, Any]
    status: str
    created_at: datetime
    done_at: datetime | None
    result: dict[str, Any]


async def build_postmortem(
    db: Database,
    incident_key_or_id: str | int,
    *,
    scheme: SeverityScheme,
    incidents: Incidents,
    now: datetime,
    timeline_limit: int = TIMELINE_LIMIT,
) -> PostMortem:
    """The draft of one incident (by key such as ``INC-0042``, or by id) as of ``now``."""
    async with db.transaction(read_only=True) as session:
        incident = await _incident(session, incidents, incident_key_or_id)
        conn = await session.connection()
        alerts = (
            await session.exec(
                select(Alert)
                .where(col(Alert.incident_id) == incident.id)
                .order_by(col(Alert.first_seen), col(Alert.id))
            )
        ).all()
        # The timeline is the one long table: its rows come back undecoded (see _raw).
        t = TimelineEvent
        data = sa.case((col(t.kind).in_(_WITH_DATA), col(t.data)), else_=sa.null())
        events = [
            _Event(id_, _aware(at), kind, actor, text, _decoded(data))
            for id_, at, kind, actor, text, data in (
                await conn.execute(
                    sa.select(col(t.id), _raw(col(t.at)), col(t.kind), col(t.actor), col(t.text))
                    .add_columns(_raw(data))
                    .where(col(t.incident_id) == incident.id)
                    .order_by(col(t.at), col(t.id))
                )
            ).all()
        ]
        follow_ups = (
            await session.exec(
                select(FollowUp)
                .where(col(FollowUp.incident_id) == incident.id)
                .order_by(col(FollowUp.id))
            )
        ).all()
        o = OutboxRow
        sent = [
            _Sent(*row)
            for row in await conn.execute(
                sa.select(
                    col(o.id),
                    col(o.lane),
                    col(o.kind),
                    col(o.payload),
                    col(o.status),
                    col(o.created_at),
                    col(o.done_at),
                    col(o.result),
                )
                .where(col(o.incident_id) == incident.id, col(o.kind).in_(_MESSAGE_KINDS))
                .order_by(col(o.id))
            )
        ]
        # Local mode's copy of what was posted: the incident's own, and the broadcast
        # channel's (which is no incident's) found by the outbox rows' markers.
        markers = [f"wr-{row.id}" for row in sent][:MAX_MARKERS]
        transcript = (
            await session.exec(
                select(TranscriptEntry)
                .where(
                    sa.or_(
                        col(TranscriptEntry.incident_id) == incident.id,
                        col(TranscriptEntry.ref).in_(markers),
                    ),
                    col(TranscriptEntry.action).in_(("message", "reply")),
                )
                .order_by(col(TranscriptEntry.id))
            )
        ).all()
    return _assemble(
        incident, alerts, events, follow_ups, sent, transcript, scheme, now, timeline_limit
    )


def _raw(column: Mapped[Any] | sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``column`` without SQLAlchemy's per-row processing, which for ten thousand rows
    costs more than the query: SQLite gives text (decoded by :func:`_aware` and
    :func:`_decoded`), psycopg gives what it already decoded."""
    return sa.type_coerce(column, sa.types.NullType())


def _aware(value: datetime | str) -> datetime:
    """A stored time as aware UTC (SQLite keeps naive UTC text: see models.UTCDateTime)."""
    if isinstance(value, str):
        if len(value) <= len("2026-11-26 10:00:00.000000"):  # naive: the usual, fast path
            return datetime.fromisoformat(value + "+00:00")
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _decoded(value: dict[str, Any] | str | None) -> Mapping[str, Any]:
    if value is None:
        return _NO_DATA
    found = json.loads(value) if isinstance(value, str) else value
    return found if isinstance(found, dict) else _NO_DATA


async def _incident(session: AsyncSession, incidents: Incidents, ref: str | int) -> Incident:
    if isinstance(ref, int):
        query = select(Incident).where(col(Incident.id) == ref)
        shown = f"#{ref}"
    else:
        number = incidents.parse_key(ref)
        query = select(Incident).where(col(Incident.number) == number)
        shown = incidents.format_key(number)
    found = (await session.exec(query)).first()
    if found is None:
        raise IncidentNotFound(shown)
    return found


# -- computing ----------------------------------------------------------------


def _assemble(
    incident: Incident,
    alerts: Sequence[Alert],
    events: Sequence[_Event],
    follow_ups: Sequence[FollowUp],
    sent: Sequence[_Sent],
    transcript: Sequence[TranscriptEntry],
    scheme: SeverityScheme,
    now: datetime,
    timeline_limit: int,
) -> PostMortem:
    times = detection_times(incident, alerts, now)
    kinds = _ByKind(events)
    bots = {e.actor for e in kinds.of("alert")} | {a.endpoint for a in alerts} | {_BOT}
    history = _severity_history(incident, kinds, bots)
    raw = _step_runs(kinds.of(*STEP_KINDS))
    diagnostics, diagnostics_omitted = _evidence([r for r in raw if r.run.kind != "mitigation"])
    mitigations, mitigations_omitted = _evidence([r for r in raw if r.run.kind == "mitigation"])
    runs = [r.run for r in raw]
    updates = tuple(
        SentUpdate(
            e.at,
            e.actor,
            str(e.data.get("status", "")),
            str(e.data.get("progress", "")),
            str(e.data.get("impact", "")),
            str(e.data.get("eta", "")),
            e.text,
        )
        for e in kinds.of("update")
    )
    pinned = tuple(
        Pinned(e.at, str(e.data.get("author") or e.actor), e.text, e.data.get("permalink"))
        for e in kinds.of("pinned")
    )
    records = tuple(_alert_record(a) for a in alerts)
    timeline, omitted = _timeline(events, timeline_limit)
    items = tuple(
        ActionItem(f.id or 0, f.text, f.owner, f.status, f.url, f.created_by, f.created_at)
        for f in follow_ups
    )
    applied = [c.level for c in history if c.applied]
    peak = _safe_highest(scheme, applied) or incident.severity
    level = _level(scheme, incident.severity)
    reopened = kinds.count(EventKind.REOPENED)
    people = _people(incident, kinds, runs, bots)
    shown = sorted((*diagnostics, *mitigations), key=lambda r: r.at)
    facts = _Facts(incident, times, history, runs, shown, updates, records, items, kinds, scheme)
    return PostMortem(
        key=incident.key,
        title=incident.title,
        service=incident.service,
        status=incident.status,
        is_open=incident.state.is_open,
        severity=incident.severity,
        severity_label=level.label if level else "",
        peak_severity=peak,
        summary=incident.summary,
        impact=incident.impact,
        root_cause=incident.root_cause,
        resolution=incident.resolution,
        declared_by=incident.created_by,
        channel=incident.channel_name,
        commander=incident.roles.get("commander"),
        communications=incident.roles.get("communications"),
        times=times,
        severity_history=history,
        people=people,
        diagnostics=diagnostics,
        diagnostics_omitted=diagnostics_omitted,
        mitigations=mitigations,
        mitigations_omitted=mitigations_omitted,
        pinned=pinned,
        updates=updates,
        messages=_messages(incident, sent, transcript, kinds),
        action_items=items,
        alerts=records,
        timeline=timeline,
        timeline_omitted=omitted,
        root_cause_hints=facts.hints(),
        went_well=facts.went_well(),
        went_poorly=facts.went_poorly(),
        response_times=facts.response_times(),
        metrics=facts.metrics(people, len(events), reopened),
        checklist_during=facts.during(),
        checklist_after=facts.after(),
        review_by=times.resolved + REVIEW_WITHIN if times.resolved else None,
        reopened=reopened,
        generated_at=now,
    )


def detection_times(incident: Incident, alerts: Sequence[Alert], now: datetime) -> Times:
    """The milestones; detection is the earliest evidence that something was wrong."""
    starts = [a.starts_at or a.first_seen for a in alerts]
    candidates = [(min(starts), "alert")] if starts else []
    if incident.detected_at is not None:
        candidates.append((incident.detected_at, "record"))
    candidates.append((incident.declared_at, "declaration"))
    detected, source = min(candidates, key=lambda c: c[0])  # min() keeps the first of ties
    return Times(
        detected=detected,
        detected_from=source,
        declared=incident.declared_at,
        acknowledged=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        mitigated=incident.mitigated_at,
        resolved=incident.resolved_at,
        as_of=now,
    )


def _severity_history(
    incident: Incident, kinds: _ByKind, bots: set[str]
) -> tuple[SeverityChange, ...]:
    changes: list[SeverityChange] = []
    for e in kinds.of(EventKind.DECLARED, EventKind.SEVERITY, EventKind.SEVERITY_KEPT):
        if e.kind == EventKind.DECLARED:
            level = str(e.data.get("severity") or incident.severity)
            found = re.search(rf"\({re.escape(level)}: (.*)\)$", e.text, re.S)
            reason = found.group(1) if found else incident.severity_reason
            if reason.startswith("default severity"):
                source = "default"
            else:
                source = "rule" if e.actor in bots else "person"
            changes.append(SeverityChange(e.at, e.actor, None, level, source, reason, True))
        elif e.kind in (EventKind.SEVERITY, EventKind.SEVERITY_KEPT):
            d = e.data
            changes.append(
                SeverityChange(
                    e.at,
                    e.actor,
                    str(d.get("from", "")) or None,
                    str(d.get("to", "")),
                    str(d.get("source", "")),
                    str(d.get("reason", "")),
                    e.kind == EventKind.SEVERITY,
                )
            )
    return tuple(changes)


def _step_runs(events: Sequence[_Event]) -> list[_Run]:
    """One record per run id: requests, approvals, refusals and the run itself folded.

    The rows stay raw here; :func:`_evidence` makes tables of the runs the draft shows.
    """
    merged: dict[str, dict[str, Any]] = {}
    for e in events:
        rid = str(e.data.get("run_id") or f"event-{e.id}")
        acc = merged.setdefault(rid, {"first": e.at, "approved": [], "outcome": "approved"})
        acc.update({k: v for k, v in e.data.items() if v not in (None, "", [], {})})
        acc["approved"] += [str(u) for u in e.data.get("approved_by") or ()]
        acc["at"] = e.at
        if e.kind == "step_run":
            acc["outcome"] = "ran"
        elif e.kind == "step_refused":
            acc["outcome"] = "refused"
        if not acc.get("summary") and e.kind == "step_refused":
            acc["summary"] = e.text
    runs = []
    for rid, d in merged.items():
        params = d.get("params")
        record = StepRun(
            run_id=rid,
            runbook=str(d.get("runbook", "")),
            step=str(d.get("step", "")),
            kind=str(d.get("kind", "diagnostic")),
            target=str(d.get("target", "")),
            params=tuple(
                sorted((str(k), _cell(v)) for k, v in params.items())
                if isinstance(params, Mapping)
                else ()
            ),
            outcome=d["outcome"],
            grade=str(d["grade"]) if d.get("grade") else None,
            summary=str(d.get("summary", "")),
            columns=(),
            rows=(),
            duration_ms=_int(d.get("duration_ms")),
            requested_by=str(d["requested_by"]) if d.get("requested_by") else None,
            approved_by=tuple(dict.fromkeys(d["approved"])),
            confirmed_by=str(d["confirmed_by"]) if d.get("confirmed_by") else None,
            requested_at=d["first"],
            at=d["at"],
        )
        runs.append(_Run(record, d.get("rows"), d.get("columns")))
    return sorted(runs, key=lambda r: r.run.at)


def _evidence(
    runs: Sequence[_Run], limit: int = EVIDENCE_LIMIT
) -> tuple[tuple[StepRun, ...], tuple[tuple[str, int], ...]]:
    """The runs to show (the most telling first), with their rows made tables."""
    ranked = sorted(runs, key=lambda r: (_GRADE_RANK.get(r.run.grade or "", 3), r.run.at))
    shown = sorted(ranked[:limit], key=lambda r: r.run.at)
    omitted = Counter(r.run.grade or "ungraded" for r in ranked[limit:])
    tables = tuple(_with_table(r) for r in shown)
    return tables, tuple(sorted(omitted.items()))


def _with_table(raw: _Run) -> StepRun:
    """The run with its first rows as a table: in the step's own ``columns`` order if it
    gave one, else in sorted order (Postgres' JSONB does not keep a dict's key order)."""
    rows, order = raw.rows, raw.columns
    dicts = (
        [r for r in rows[:MAX_ROWS] if isinstance(r, Mapping)] if isinstance(rows, Sequence) else []
    )
    keys = {str(k) for r in dicts for k in r}
    given = [str(c) for c in order] if isinstance(order, Sequence) else []
    columns = ([c for c in given if c in keys] + sorted(keys - set(given)))[:MAX_COLUMNS]
    table = tuple(tuple(_cell(r.get(c)) for c in columns) for r in dicts)
    return replace(raw.run, columns=tuple(columns), rows=table)


def _people(
    incident: Incident, by_kind: _ByKind, runs: Sequence[StepRun], bots: set[str]
) -> tuple[Person, ...]:
    kinds: dict[str, Counter[str]] = {}
    for kind, group in by_kind.groups.items():
        for actor, n in Counter(e.actor for e in group).items():
            kinds.setdefault(actor, Counter())[kind] = n
    roles: dict[str, list[str]] = {}
    for e in by_kind.of(EventKind.ROLE):
        if e.data.get("user"):
            roles.setdefault(str(e.data["user"]), []).append(f"{e.data.get('role')} (earlier)")
    for role, user in incident.roles.items():
        roles.setdefault(user, []).append(role)
    named = [u for r in runs for u in (*r.approved_by, r.requested_by, r.confirmed_by) if u]
    for user in [*roles, *named]:
        kinds.setdefault(user, Counter())
    people = []
    for name, counted in kinds.items():
        current = [r for r in roles.get(name, []) if not r.endswith(" (earlier)")]
        earlier = [r for r in roles.get(name, []) if r.removesuffix(" (earlier)") not in current]
        people.append(
            Person(
                name=name,
                roles=tuple(dict.fromkeys([*current, *earlier])),
                actions=sum(counted.values()),
                kinds=tuple(counted.most_common()),
                automation=name in bots,
            )
        )
    return tuple(sorted(people, key=lambda p: (p.automation, -p.actions, p.name)))


def _messages(
    incident: Incident,
    sent: Sequence[_Sent],
    transcript: Sequence[TranscriptEntry],
    kinds: _ByKind,
) -> tuple[SentMessage, ...]:
    posted = {t.ref: t for t in transcript if t.ref}
    moments = {
        e.at: {"declared": "initial", "resolved": "resolution", "reopened": "reopened"}[e.kind]
        for e in kinds.of("declared", "resolved", "reopened")
    }
    updates = {e.text for e in kinds.of("update")}
    own = f"#{incident.channel_name}" if incident.channel_name else incident.key
    found = []
    for row in sent:
        copy = posted.get(f"wr-{row.id}")
        if row.result.get("skipped"):
            continue
        text = str(row.payload.get("text") or (copy.text if copy else ""))
        if row.kind == "message":
            what = "update" if text in updates else moments.get(row.created_at, "message")
        else:
            what = {"announce": "announcement", "alert_summary": "alert summary"}.get(
                row.kind, row.kind
            )
        text = text or f"({what}: rendered when sent, not kept)"
        channel = copy.channel if copy else ("broadcast" if row.lane == "broadcast" else own)
        status = {"done": "sent"}.get(row.status, row.status)
        found.append(SentMessage(row.done_at or row.created_at, channel, what, status, text))
    refs = {f"wr-{row.id}" for row in sent}
    found += [
        SentMessage(t.at, t.channel, "message", "sent", t.text)
        for t in transcript
        if t.ref not in refs
    ]
    return tuple(sorted(found, key=lambda m: m.at))


def _alert_record(alert: Alert) -> AlertRecord:
    return AlertRecord(
        name=alert.labels.get("alertname") or alert.summary or alert.fingerprint,
        source=alert.source,
        status=alert.status,
        count=alert.count,
        first_seen=alert.first_seen,
        last_seen=alert.last_seen,
        started=alert.starts_at,
        summary=alert.summary,
        links=tuple(sorted((str(k), str(v)) for k, v in alert.links.items())),
    )


def _timeline(
    events: Sequence[_Event], limit: int
) -> tuple[tuple[TimelineEntry, ...], tuple[tuple[str, int], ...]]:
    """Events oldest first, identical neighbours folded; past ``limit``, the key events win.

    Of the other events (alerts, notes, step runs, which have sections of their own) the
    first and the last are kept, as many as there is room for.
    """
    folded: list[list[Any]] = []  # [at, kind, actor, text, repeats, until]
    for e in events:
        text = e.text
        if e.kind == "update":
            first = (e.data.get("progress") or text.partition("\n")[0]).strip()
            text = f"update sent ({e.data.get('status', '')}): {first}"
        elif "\n" in text:
            text = text.partition("\n")[0] + " …"
        if e.kind in ("note", "pinned"):
            text = f"{e.kind}: {text}"
        last = folded[-1] if folded else None
        if last and last[1] == e.kind and last[2] == e.actor and last[3] == text:
            last[4] += 1
            last[5] = e.at
        else:
            folded.append([e.at, e.kind, e.actor, text, 1, None])
    dropped: Counter[str] = Counter()
    if len(folded) > limit:
        other = [i for i, x in enumerate(folded) if x[1] not in KEY_KINDS]
        room = max(0, limit - (len(folded) - len(other)))
        cut = set(other[room // 2 : len(other) - (room - room // 2)])
        for i in cut:
            dropped[folded[i][1]] += folded[i][4]
        folded = [x for i, x in enumerate(folded) if i not in cut]
    return tuple(TimelineEntry(*x) for x in folded), tuple(sorted(dropped.items()))


class _Facts:
    """The judgements drawn from the record: hints, observations, metrics, checklists."""

    def __init__(
        self,
        incident: Incident,
        times: Times,
        history: Sequence[SeverityChange],
        runs: Sequence[StepRun],
        shown: Sequence[StepRun],
        updates: Sequence[SentUpdate],
        alerts: Sequence[AlertRecord],
        items: Sequence[ActionItem],
        kinds: _ByKind,
        scheme: SeverityScheme,
    ) -> None:
        self.incident = incident
        self.times = times
        self.history = [c for c in history if c.applied]
        self.runs = runs  # all of them: counts
        self.shown = shown  # those the draft shows: hints
        self.updates = updates
        self.alerts = alerts
        self.items = items
        self.kinds = kinds
        self.scheme = scheme

    def severity_at(self, moment: datetime) -> SeverityLevel | None:
        """The severity in force at ``moment`` (before the declaration: the declared one)."""
        name = self.history[0].level if self.history else self.incident.severity
        for change in self.history:
            if change.at <= moment:
                name = change.level
        return _level(self.scheme, name)

    def _ack_target(self) -> tuple[SeverityLevel | None, bool | None]:
        t = self.times
        level = self.severity_at(t.acknowledged or t.as_of)
        took = t.to_acknowledge.from_detection
        if level is None:
            return None, None
        if took is None:  # missed once the response time ran out before it was over
            over = (t.resolved or t.as_of) - t.detected > level.response_time
            return level, (False if over else None)
        return level, took <= level.response_time

    def update_gaps(self) -> list[tuple[datetime, timedelta, SeverityLevel]]:
        """Each stretch without a message that outran its severity's update interval."""
        t = self.times
        points = [t.declared, *(u.at for u in self.updates)]
        end = t.resolved or t.as_of
        gaps = []
        for start, stop in zip(points, [*points[1:], end], strict=True):
            level = self.severity_at(start)
            if level is not None and stop - start > level.update_interval:
                gaps.append((start, stop - start, level))
        return gaps

    def hints(self) -> tuple[str, ...]:
        """Evidence a root cause should explain: bad readings, what fixed it, alerts, why
        the severity was what it was (at most :data:`HINTS_FROM_RUNS` of each kind of run)."""
        bad = [r for r in self.shown if r.grade in ("red", "yellow") and r.outcome == "ran"]
        fixes = [
            r
            for r in self.shown
            if r.kind == "mitigation" and r.outcome == "ran" and r.grade != "error"
        ]
        found = [
            f"{r.kind.capitalize()} {_step_name(r)} was {(r.grade or '').upper()} at "
            f"{r.at:%H:%M} UTC: {r.summary}"
            for r in bad[:HINTS_FROM_RUNS]
        ]
        found += [
            f"Mitigation {_step_name(r)} ran at {r.at:%H:%M} UTC: {r.summary}"
            for r in fixes[:HINTS_FROM_RUNS]
        ]
        for alert in self.alerts[:5]:
            found.append(
                f"Alert {alert.name} fired ({alert.count}×, first at {alert.first_seen:%H:%M} UTC)"
                + (f": {alert.summary}" if alert.summary and alert.summary != alert.name else "")
            )
        if len(self.alerts) > 5:
            found.append(f"… and {len(self.alerts) - 5} more alert(s) (see the appendix)")
        for change in self.history:
            if change.source != "default" and change.reason:
                found.append(f"Severity {change.level} ({change.source}): {change.reason}")
        return tuple(dict.fromkeys(found))

    def went_well(self) -> tuple[str, ...]:
        t, found = self.times, []
        if t.detected_from == "alert" and self.alerts:
            first = min(self.alerts, key=lambda a: a.started or a.first_seen)
            found.append(f"Detected by monitoring: {first.name} fired first.")
        level, met = self._ack_target()
        took = t.to_acknowledge.from_detection
        if met and level is not None and took is not None:
            found.append(
                f"Acknowledged {format_duration(took)} after detection, within the "
                f"{level.name} response time ({format_duration(level.response_time)})."
            )
        if self.updates and not self.update_gaps():
            found.append(
                f"{len(self.updates)} update(s) sent; none came later than the severity's "
                "update interval."
            )
        if t.mitigated is not None and t.to_mitigate.from_detection is not None:
            found.append(
                f"Mitigated {format_duration(t.to_mitigate.from_detection)} after detection."
            )
        return tuple(found)

    def went_poorly(self) -> tuple[str, ...]:
        t, found = self.times, []
        if not self.alerts:
            found.append("No alert fired: a person noticed it first.")
        elif t.detected_from != "alert":
            first = min(a.started or a.first_seen for a in self.alerts)
            found.append(f"The first alert came at {first:%H:%M} UTC, after a person noticed it.")
        level, met = self._ack_target()
        took = t.to_acknowledge.from_detection
        if met is False and level is not None:
            when = (
                "Never acknowledged"
                if took is None
                else f"Acknowledged {format_duration(took)} after detection"
            )
            target = format_duration(level.response_time)
            found.append(f"{when}; the {level.name} response time is {target}.")
        for start, gap, gap_level in self.update_gaps():
            found.append(
                f"No update for {format_duration(gap)} after {start:%H:%M} UTC; {gap_level.name} "
                f"asks for one every {format_duration(gap_level.update_interval)}."
            )
        for run in self.shown:
            if run.grade == "error":
                found.append(f"{run.kind.capitalize()} {_step_name(run)} failed: {run.summary}")
        reopened = self.kinds.count(EventKind.REOPENED)
        if reopened:
            found.append(f"Reopened {reopened} time(s) after being resolved.")
        return tuple(found)

    def response_times(self) -> tuple[ResponseTime, ...]:
        t = self.times
        level, met = self._ack_target()
        return (
            ResponseTime("Time to declare", Span(t.to_declare, None)),
            ResponseTime(
                "Time to acknowledge",
                t.to_acknowledge,
                level.response_time if level else None,
                level.name if level else None,
                met,
            ),
            ResponseTime("Time to mitigate", t.to_mitigate),
            ResponseTime("Time to resolve", t.to_resolve),
        )

    def metrics(self, people: Sequence[Person], events: int, reopened: int) -> tuple[Metric, ...]:
        t = self.times
        duration = format_duration(t.duration) + (" so far (still open)" if t.ongoing else "")
        diagnostics = [r for r in self.runs if r.kind != "mitigation" and r.outcome == "ran"]
        grades = Counter(r.grade or "ungraded" for r in diagnostics)
        mitigations = [r for r in self.runs if r.kind == "mitigation"]
        gaps = self.update_gaps()
        open_items = sum(1 for i in self.items if i.status != "done")
        return (
            Metric("Duration (detection to resolution)", duration),
            Metric("Severity changes", str(max(0, len(self.history) - 1))),
            Metric(
                "Alerts",
                f"{len(self.alerts)} ({sum(a.count for a in self.alerts)} notifications)",
            ),
            Metric(
                "Diagnostics run",
                f"{len(diagnostics)}"
                + (
                    f" ({', '.join(f'{n} {g}' for g, n in sorted(grades.items()))})"
                    if grades
                    else ""
                ),
            ),
            Metric(
                "Mitigations",
                f"{sum(r.outcome == 'ran' for r in mitigations)} ran, "
                f"{sum(r.outcome == 'refused' for r in mitigations)} refused",
            ),
            Metric(
                "Updates sent",
                f"{len(self.updates)}"
                + (f" ({len(gaps)} late)" if gaps else (" (none late)" if self.updates else "")),
            ),
            Metric("Responders", str(sum(1 for p in people if not p.automation))),
            Metric("Timeline events", str(events)),
            Metric("Action items", f"{len(self.items)} ({open_items} open)"),
            Metric("Reopened", str(reopened)),
        )

    def during(self) -> tuple[CheckItem, ...]:
        """The runbook's "During Incident" checklist, ticked from the record."""
        t, inc = self.times, self.incident
        channel = self.kinds.count("channel") > 0 or inc.channel_name is not None
        notes = self.kinds.count("note", "pinned", *STEP_KINDS)
        monitored = [
            e.at for e in self.kinds.of(EventKind.STATUS) if e.data.get("to") == "monitoring"
        ]
        return (
            CheckItem(
                "Acknowledge alert",
                t.acknowledged is not None,
                f"by {t.acknowledged_by} at {t.acknowledged:%H:%M} UTC"
                if t.acknowledged
                else "never acknowledged",
            ),
            CheckItem(
                "Assess impact and severity",
                bool(inc.impact) and inc.severity_source != "default",
                f"{inc.severity} ({inc.severity_source}); impact "
                + ("recorded" if inc.impact else "not recorded"),
            ),
            CheckItem(
                "Start incident channel/call",
                channel,
                f"#{inc.channel_name}" if inc.channel_name else "no channel on record",
            ),
            CheckItem(
                "Implement immediate mitigation",
                t.mitigated is not None,
                f"mitigated at {t.mitigated:%H:%M} UTC" if t.mitigated else "not mitigated",
            ),
            CheckItem(
                "Communicate status to stakeholders",
                bool(self.updates),
                f"{len(self.updates)} update(s) sent",
            ),
            CheckItem(
                "Document actions taken",
                notes > 0,
                f"{notes} note(s), pin(s) and step run(s) on the timeline",
            ),
            CheckItem(
                "Monitor recovery metrics",
                bool(monitored),
                f"monitoring from {monitored[0]:%H:%M} UTC" if monitored else "never in monitoring",
            ),
        )

    def after(self) -> tuple[CheckItem, ...]:
        """The runbooks' "Post-Incident" checklists; only the record's facts are ticked."""
        t, inc = self.times, self.incident
        firing = [a.name for a in self.alerts if a.status == "firing"]
        open_items = sum(1 for i in self.items if i.status != "done")
        runbooks = sorted({r.runbook for r in self.runs if r.runbook})
        names = sorted({a.name for a in self.alerts})
        return (
            CheckItem(
                "Ensure system stability",
                t.resolved is not None and not firing,
                "still firing: " + ", ".join(firing) if firing else "no alert firing",
            ),
            CheckItem(
                "Document root cause",
                bool(inc.root_cause),
                "recorded at resolution" if inc.root_cause else "not recorded yet",
            ),
            CheckItem("Create incident report", False, "this draft: fill in every ✍️ field"),
            CheckItem(
                "Schedule post-mortem",
                False,
                f"within 48 hours: by {t.resolved + REVIEW_WITHIN:%Y-%m-%d %H:%M} UTC"
                if t.resolved
                else "within 48 hours of resolution",
            ),
            CheckItem(
                "Update runbook with learnings",
                False,
                "runbooks used: " + ", ".join(runbooks) if runbooks else "no runbook step was run",
            ),
            CheckItem(
                "Implement preventive measures",
                bool(self.items) and open_items == 0,
                f"{len(self.items)} action item(s), {open_items} open",
            ),
            CheckItem(
                "Review monitoring and alert thresholds",
                False,
                "alerts: " + ", ".join(names) if names else "no alert fired: add one?",
            ),
            CheckItem(
                "Close incident ticket",
                t.resolved is not None,
                f"resolved at {t.resolved:%H:%M} UTC" if t.resolved else f"still {inc.status}",
            ),
        )


# -- small helpers ---------------------------------------------------------------


def _level(scheme: SeverityScheme, name: str) -> SeverityLevel | None:
    try:
        return scheme.get(name)
    except InvalidSeverity:  # a level the configuration no longer has
        return None


def _safe_highest(scheme: SeverityScheme, names: Sequence[str]) -> str | None:
    known = [n for n in names if _level(scheme, n) is not None]
    return scheme.highest(known).name if known else None


def _step_name(run: StepRun) -> str:
    return f"{run.runbook}/{run.step}" if run.runbook else run.step or run.run_id


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def format_duration(value: timedelta | None) -> str:
    """``timedelta(minutes=65)`` → ``1 h 5 min``; seconds show only under an hour; None → —."""
    if value is None:
        return "—"
    total = int(value.total_seconds())
    if total < 0:
        return "-" + format_duration(-value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    if total < 3600:
        parts.append((seconds, "s"))
    shown = " ".join(f"{n} {unit}" for n, unit in parts if n)
    return shown or "0 s"


# -- Markdown -----------------------------------------------------------------

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~])")
_LINE_START = re.compile(r"^(?:([-+=])|(\d{1,9})([.)])(?=\s|$))")


def md_escape(value: object) -> str:
    """Text from alerts and people, made inert in Markdown (and in the HTML it becomes).

    Emphasis, links, code, headings, tables and raw HTML are escaped; lines lose their
    leading blanks (no accidental code blocks) and list or quote markers are escaped.
    """
    if value is None:
        return ""
    text = _SPECIAL.sub(r"\\\1", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = (_LINE_START.sub(_escape_start, line.strip()) for line in text.splitlines())
    return "\n".join(lines)


def _escape_start(found: re.Match[str]) -> str:
    if found.group(1):
        return "\\" + found.group(1)  # a bullet, or a heading's underline
    return found.group(2) + "\\" + found.group(3)  # "1." or "1)" starting an ordered list


def md_inline(value: object) -> str:
    """:func:`md_escape` on one line: for table cells, headings and list items."""
    return " ".join(md_escape(value).split())


def md_fence(value: object, info: str = "text") -> str:
    """A fenced code block holding ``value`` verbatim (a fence longer than any inside)."""
    text = "" if value is None else str(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def md_link(url: object, label: object = None) -> str:
    """A link to an http(s) ``url``; any other scheme is shown as text, never linked."""
    target = "" if url is None else str(url).strip()
    shown = md_inline(label if label is not None else target)
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        return f"{shown} ({md_inline(target)})" if label is not None else shown
    for char, code in (("<", "%3C"), (">", "%3E"), ("|", "%7C"), (" ", "%20")):
        target = target.replace(char, code)
    return f"[{shown}](<{''.join(target.split())}>)"


def register_filters(env: jinja2.Environment) -> None:
    """Add ``md_escape``, ``md_inline``, ``md_fence``, ``md_link`` and ``duration``."""
    env.filters.update(
        md_escape=md_escape,
        md_inline=md_inline,
        md_fence=md_fence,
        md_link=md_link,
        duration=format_duration,
    )


def render_markdown(templates: Templates, pm: PostMortem) -> str:
    """The draft as Markdown, from ``postmortem.md.j2`` (the user's copy first)."""
    if "md_escape" not in templates.env.filters:
        register_filters(templates.env)
    return templates.render(TEMPLATE, pm=pm, zone=str(templates.zone)) + "\n"
