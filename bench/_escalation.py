"""The escalation drill's configuration, its record and its audit (``python -m bench.drills
escalation``).

The audit (:func:`audit_escalation`) is a pure function of an :class:`EscalationRecord`: what
the drill meant for each incident, what the database holds (incidents, ``escalated`` timeline
events, the page outbox rows) and what the PagerDuty stand-in accepted. ``tests/
test_drill_audit.py`` feeds it hand-made records. :func:`read_record` gathers the real one.

Every page row is delivered at least once; PagerDuty's ``dedup_key`` (the incident's key)
makes a repeat harmless. A repeat is allowed only for a row a killed worker was holding when it
died (it may have sent the event and died before it recorded the answer); any other repeat is
a violation.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

ESCALATE = "escalate"
ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"
INTENTS = (ESCALATE, ACKNOWLEDGE, RESOLVE)

#: Outbox kinds of the page rows → PagerDuty's ``event_action``.
PAGE_KINDS = {
    "page_trigger": "trigger",
    "page_acknowledge": "acknowledge",
    "page_resolve": "resolve",
}

PRIMARY, SECONDARY = "primary", "secondary"
ROUTING_KEYS = {PRIMARY: "p" * 32, SECONDARY: "s" * 32}
KEY_ENV = {PRIMARY: "DRILL_PD_PRIMARY", SECONDARY: "DRILL_PD_SECONDARY"}
RESPONSE_TIME = timedelta(seconds=90)  # P2's response time in the drill's own scheme
STEP_2_AFTER = timedelta(seconds=10)
#: The escalation steps' targets: step 1 pages ``secondary``, step 2 tells the channel only.
STEPS: tuple[str | None, ...] = (SECONDARY, None)


def config_yaml(pagerduty_url: str) -> str:
    """The drill's warroom.yaml: a scheme whose response time is seconds, two targets, a rule
    paging ``primary`` for every incident, and two escalation steps."""
    targets = "".join(
        f"    {name}: {{routing_key_env: {KEY_ENV[name]}, url: '{pagerduty_url}'}}\n"
        for name in (PRIMARY, SECONDARY)
    )
    seconds = int(RESPONSE_TIME.total_seconds())
    return (
        "severity:\n"
        "  levels:\n"
        f"    - {{name: P1, label: Critical, response_time: {seconds}s, update_interval: 1h}}\n"
        f"    - {{name: P2, label: High, response_time: {seconds}s, update_interval: 1h}}\n"
        "  default: P2\n"
        "  default_rules: false\n"
        "intake:\n"
        "  when_all_resolved: resolve\n"
        "paging:\n"
        f"  pagerduty:\n{targets}"
        "  rules:\n"
        f"    - {{target: {PRIMARY}}}\n"
        "  escalation:\n"
        f"    - {{page: {SECONDARY}}}\n"
        f"    - {{after: {int(STEP_2_AFTER.total_seconds())}s}}\n"
    )


@dataclass(frozen=True)
class IncidentFacts:
    declared_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def first_due(self) -> datetime:
        return self.declared_at + RESPONSE_TIME


@dataclass(frozen=True)
class PageRow:
    id: int
    key: str
    action: str  # trigger, acknowledge, resolve
    target: str
    status: str


@dataclass
class EscalationRecord:
    #: incident key → what the drill did to it: escalate (left alone), acknowledge, resolve.
    intent: dict[str, str]
    incidents: dict[str, IncidentFacts]
    #: (incident key, step, when) of every ``escalated`` timeline event.
    escalations: list[tuple[str, int, datetime]]
    page_rows: list[PageRow]
    #: outbox status → rows
    outbox: dict[str, int]
    #: the events the stand-in accepted (202), as sent (routing_key, event_action, dedup_key…)
    events: list[dict[str, Any]]
    #: events the stand-in refused (400): none should be
    refused: int = 0
    #: ids of the outbox rows a killed worker held when it died
    in_flight: set[int] = field(default_factory=set)
    steps: tuple[str | None, ...] = STEPS
    routing_keys: dict[str, str] = field(default_factory=lambda: dict(ROUTING_KEYS))


Page = tuple[str, str, str]  # (incident key, target, action)


def expected_pages(record: EscalationRecord) -> Counter[Page]:
    """Each incident's pages: a trigger at ``primary``; left alone, a trigger per paging step;
    acknowledged, an acknowledge at ``primary``; resolved, a resolve there."""
    wanted: Counter[Page] = Counter()
    for key, what in record.intent.items():
        wanted[(key, PRIMARY, "trigger")] += 1
        if what == ESCALATE:
            for target in record.steps:
                if target:
                    wanted[(key, target, "trigger")] += 1
        elif what == ACKNOWLEDGE:
            wanted[(key, PRIMARY, "acknowledge")] += 1
        else:
            wanted[(key, PRIMARY, "resolve")] += 1
    return wanted


def audit_escalation(record: EscalationRecord) -> tuple[dict[str, Any], list[str]]:
    """The figures, and every way the record is wrong."""
    problems: list[str] = []
    steps = list(range(1, len(record.steps) + 1))
    fired: dict[str, list[int]] = {}
    for key, step, _ in record.escalations:
        fired.setdefault(key, []).append(step)
    for key in sorted(set(fired) - set(record.intent)):
        problems.append(f"{key}: escalated, but the drill did not open it")

    for key, what in sorted(record.intent.items()):
        facts = record.incidents.get(key)
        if facts is None:
            problems.append(f"{key}: not in the database")
            continue
        got = sorted(fired.get(key, []))
        if what == ESCALATE:
            if got != steps:
                problems.append(
                    f"{key} (never acknowledged): escalation steps fired {got}, "
                    f"expected each of {steps} once"
                )
            if facts.acknowledged_at is not None:
                problems.append(f"{key}: meant to stay unacknowledged but was acknowledged")
            early = [
                s for k, s, at in record.escalations if k == key and s == 1 and at < facts.first_due
            ]
            if early:
                problems.append(f"{key}: escalation step 1 fired before its response time")
        else:
            if got:
                problems.append(f"{key} ({what}d before it was due): escalated, steps {got}")
            when = facts.acknowledged_at if what == ACKNOWLEDGE else facts.resolved_at
            if when is None:
                problems.append(f"{key}: meant to be {what}d, but it is not")
            elif when >= facts.first_due:
                problems.append(f"{key}: {what}d only after its escalation was due")

    wanted = expected_pages(record)
    rows: Counter[Page] = Counter((r.key, r.target, r.action) for r in record.page_rows)
    allowed: Counter[Page] = Counter(
        (r.key, r.target, r.action) for r in record.page_rows if r.id in record.in_flight
    )
    for page in sorted(set(rows) | set(wanted)):
        if rows[page] != wanted[page]:
            key, target, action = page
            problems.append(
                f"{key}: {rows[page]} outbox row(s) to {action} `{target}`, expected {wanted[page]}"
            )

    targets = {v: k for k, v in record.routing_keys.items()}
    sent: Counter[Page] = Counter()
    keys = set(record.intent)
    for event in record.events:
        target = targets.get(str(event.get("routing_key")))
        dedup = str(event.get("dedup_key"))
        action = str(event.get("event_action"))
        if target is None:
            problems.append(f"an event to an unknown routing key: {action} {dedup}")
            continue
        if dedup not in keys:
            problems.append(f"a {action} at `{target}` with dedup_key {dedup!r}, not an incident")
            continue
        summary = str((event.get("payload") or {}).get("summary", ""))
        if action == "trigger" and not summary.startswith(f"{dedup} "):
            problems.append(f"a trigger for {summary[:40]!r} carries dedup_key {dedup}")
        sent[(dedup, target, action)] += 1
    resent = 0
    for page in sorted(set(sent) | set(wanted)):
        key, target, action = page
        if sent[page] < wanted[page]:
            problems.append(f"{key}: {action} at `{target}` never reached PagerDuty")
        elif sent[page] > wanted[page] + allowed[page]:
            problems.append(
                f"{key}: {action} at `{target}` sent {sent[page]} times "
                f"(expected {wanted[page]}, {allowed[page]} in flight at the kill)"
            )
        resent += max(0, sent[page] - wanted[page])

    if record.refused:
        problems.append(f"the stand-in refused {record.refused} event(s) as invalid")
    left = {s: n for s, n in record.outbox.items() if s != "done" and n}
    if left:
        problems.append(f"outbox rows not done: {left}")

    margins = [
        (f.first_due - when).total_seconds()
        for key, what in record.intent.items()
        if what != ESCALATE and (f := record.incidents.get(key)) is not None
        if (when := f.acknowledged_at if what == ACKNOWLEDGE else f.resolved_at) is not None
    ]
    intents = Counter(record.intent.values())
    figures = {
        "incidents_left_alone": intents[ESCALATE],
        "incidents_acknowledged": intents[ACKNOWLEDGE],
        "incidents_resolved": intents[RESOLVE],
        "escalated_events": len(record.escalations),
        "least_margin_before_due_s": round(min(margins), 1) if margins else None,
        "pagerduty_events": dict(
            Counter(f"{t}:{a}" for (_, t, a), n in sent.items() for _ in range(n))
        ),
        "pagerduty_resent_after_kill": resent,
        "rows_held_by_killed_worker": len(record.in_flight),
        "outbox": dict(record.outbox),
    }
    return figures, problems


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def read_record(
    db_url: str,
    intent: dict[str, str],
    events: list[dict[str, Any]],
    *,
    refused: int,
    in_flight: set[int],
) -> EscalationRecord:
    """The record of a drill run: the database's side read from ``db_url``."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT id, key, declared_at, acknowledged_at, resolved_at FROM incident")
            ).all()
            keys = {row[0]: row[1] for row in found}
            incidents = {row[1]: IncidentFacts(row[2], row[3], row[4]) for row in found}
            escalations = [
                (keys[incident_id], int(_json(data)["step"]), at)
                for incident_id, data, at in conn.execute(
                    sa.text(
                        "SELECT incident_id, data, at FROM timeline_event WHERE kind = 'escalated'"
                    )
                ).all()
            ]
            page_rows = [
                PageRow(
                    id, keys[incident_id], PAGE_KINDS[kind], str(_json(payload)["target"]), status
                )
                for id, incident_id, kind, payload, status in conn.execute(
                    sa.text(
                        "SELECT id, incident_id, kind, payload, status FROM outbox "
                        "WHERE kind IN ('page_trigger', 'page_acknowledge', 'page_resolve')"
                    )
                ).all()
            ]
            outbox = dict(
                conn.execute(sa.text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
            )
    finally:
        engine.dispose()
    return EscalationRecord(
        intent=intent,
        incidents=incidents,
        escalations=escalations,
        page_rows=page_rows,
        outbox=outbox,
        events=events,
        refused=refused,
        in_flight=in_flight,
    )


def held_rows(conn: sa.Connection) -> list[tuple[int, str, str, str]]:
    """Pending outbox rows under a live lease: (id, kind, dedupe key, the worker holding it)."""
    rows = conn.execute(
        sa.text(
            "SELECT id, kind, coalesce(dedupe_key, ''), claimed_by FROM outbox "
            "WHERE status = 'pending' AND claimed_until IS NOT NULL AND claimed_until > now()"
        )
    ).all()
    conn.rollback()  # a fresh snapshot next time
    return [(int(i), str(k), str(d), str(w)) for i, k, d, w in rows]


def fired_but_unsettled(conn: sa.Connection, ids: set[int]) -> int:
    """How many of the ``escalate`` rows ``ids`` had recorded their step, unsettled."""
    if not ids:
        return 0
    query = sa.text(
        "SELECT count(*) FROM outbox o WHERE o.id IN :ids AND o.kind = 'escalate' "
        "AND o.status = 'pending' AND EXISTS (SELECT 1 FROM timeline_event t "
        "WHERE t.incident_id = o.incident_id AND t.kind = 'escalated' "
        "AND t.data ->> 'step' = o.payload ->> 'step')"
    ).bindparams(sa.bindparam("ids", expanding=True))
    value = conn.execute(query, {"ids": sorted(ids)}).scalar_one()
    conn.rollback()
    return int(value)


def scalar(conn: sa.Connection, query: str) -> Any:
    value = conn.execute(sa.text(query)).scalar_one()
    conn.rollback()
    return value
