"""Building the draft: :func:`build_postmortem` reads the record and assembles the tree.

The incident, its alerts, timeline, follow-ups and the messages sent are read with one
query per table, in one read-only transaction; :func:`_assemble` then builds each section
of the :class:`~bot.postmortem.model.PostMortem` from them (the judgements come from
:class:`~bot.postmortem.facts.Facts`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import IncidentNotFound
from bot.incidents.lifecycle import EventKind, Incidents
from bot.incidents.severity import SeverityScheme
from bot.incidents.statuspage import PUBLISHED, from_events
from bot.postmortem.facts import REVIEW_WITHIN, Facts, known_level
from bot.postmortem.model import (
    ActionItem,
    AlertRecord,
    Person,
    Pinned,
    PostMortem,
    SentMessage,
    SentUpdate,
    SeverityChange,
    StepRun,
    TimelineEntry,
    Times,
)
from bot.postmortem.prefill import ResolvePrefill, prefill
from bot.postmortem.record import STEP_KINDS, ByKind, Event
from bot.store.db import Database
from bot.store.models import Alert, FollowUp, Incident, OutboxRow, TimelineEvent, TranscriptEntry
from bot.store.models import StepRun as StepRunRow

#: Past this many entries the timeline keeps its key events and elides the rest.
TIMELINE_LIMIT = 500
MAX_ROWS = 10
MAX_COLUMNS = 8
MAX_MARKERS = 1000
#: Past this many runs in a section, the rest are counted, not shown (red first, then
#: errors, yellow and green; the earliest first within a grade).
EVIDENCE_LIMIT = 40
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
    PUBLISHED,
)
_GRADE_RANK = {"red": 0, "error": 1, "yellow": 2}
_NO_DATA: Mapping[str, Any] = MappingProxyType({})
_MESSAGE_KINDS = ("message", "announce", "alert_summary", "reminder")
_BOT = "warroom"


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
            Event(id_, _aware(at), kind, actor, text, _decoded(data))
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
        # The grading's reasons are on the step_run rows: the drafted root cause needs them.
        step_rows = (
            await session.exec(
                select(StepRunRow)
                .where(col(StepRunRow.incident_id) == incident.id)
                .order_by(col(StepRunRow.id))
            )
        ).all()
    updates = [e for e in events if e.kind == "update"]
    progress = str(updates[-1].data.get("progress") or "") if updates else ""
    drafted = prefill(incident, step_rows, progress)
    if not progress.strip():  # the title alone says less than the draft's "what happened" prompt
        drafted = replace(drafted, summary="")
    drafted_pm = _assemble(
        incident,
        alerts,
        events,
        follow_ups,
        sent,
        transcript,
        scheme,
        now,
        timeline_limit,
        drafted=drafted,
    )
    # The public status page links, from the timeline's publications (bot.incidents.statuspage).
    public = from_events((e.kind, e.data or {}) for e in events)
    return replace(drafted_pm, status_pages=public) if public else drafted_pm


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
    events: Sequence[Event],
    follow_ups: Sequence[FollowUp],
    sent: Sequence[_Sent],
    transcript: Sequence[TranscriptEntry],
    scheme: SeverityScheme,
    now: datetime,
    timeline_limit: int,
    *,
    drafted: ResolvePrefill | None = None,
) -> PostMortem:
    """The tree; ``drafted`` (:mod:`bot.postmortem.prefill`) fills what the responder left empty."""
    drafted = drafted or ResolvePrefill("", "", "")
    times = detection_times(incident, alerts, now)
    kinds = ByKind(events)
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
    level = known_level(scheme, incident.severity)
    reopened = kinds.count(EventKind.REOPENED)
    people = _people(incident, kinds, runs, bots)
    shown = sorted((*diagnostics, *mitigations), key=lambda r: r.at)
    facts = Facts(incident, times, history, runs, shown, updates, records, items, kinds, scheme)
    return PostMortem(
        key=incident.key,
        title=incident.title,
        service=incident.service,
        status=incident.status,
        is_open=incident.state.is_open,
        severity=incident.severity,
        severity_label=level.label if level else "",
        peak_severity=peak,
        summary=incident.summary or drafted.summary,
        impact=incident.impact,
        root_cause=incident.root_cause or drafted.root_cause,
        resolution=incident.resolution or drafted.resolution,
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
    incident: Incident, kinds: ByKind, bots: set[str]
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


def _step_runs(events: Sequence[Event]) -> list[_Run]:
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
    incident: Incident, by_kind: ByKind, runs: Sequence[StepRun], bots: set[str]
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
    kinds: ByKind,
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
    events: Sequence[Event], limit: int
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


def _safe_highest(scheme: SeverityScheme, names: Sequence[str]) -> str | None:
    known = [n for n in names if known_level(scheme, n) is not None]
    return scheme.highest(known).name if known else None


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None
