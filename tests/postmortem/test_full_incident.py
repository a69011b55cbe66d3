"""A whole incident through the real core, drafted and compared with a reviewed golden file.

Set ``WARROOM_UPDATE_GOLDEN=1`` to rewrite the golden file, then read the diff.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.clock import FixedClock
from bot.core import Core
from bot.postmortem import PostMortem, build_postmortem, render_markdown
from bot.templating import Templates

from ..conftest import T0
from .checks import assert_tables_keep_their_shape
from .scenario import KEY, full_incident

GOLDEN = Path(__file__).parent / "golden" / "full_incident.md"
SECTIONS = [
    "# Post-mortem: INC-0001 — Query latency above 2 s on orders-db",
    "## Summary",
    "## Impact",
    "## Severity and duration",
    "## People and roles",
    "## Detection",
    "## Timeline",
    "## Investigation",
    "### Pinned in the channel",
    "## Mitigation and resolution",
    "## Root cause",
    "## Contributing factors",
    "## What went well",
    "## What went poorly",
    "## Action items",
    "## Communications log",
    "### Updates as sent",
    "### Messages",
    "## Metrics",
    "## Post-incident checklist",
    "### During the incident",
    "### After the incident",
    "## Appendix: alerts",
]


async def drafted(core: Core, clock: FixedClock) -> PostMortem:
    await full_incident(core, clock)
    return await build_postmortem(
        core.db, KEY, scheme=core.incidents.scheme, incidents=core.incidents, now=clock.now()
    )


async def test_full_incident_matches_the_golden_file(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    text = render_markdown(templates, await drafted(core, clock))
    if os.environ.get("WARROOM_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


async def test_the_times_are_those_of_the_clock_steps(core: Core, clock: FixedClock) -> None:
    pm = await drafted(core, clock)
    t = pm.times
    assert (t.detected, t.detected_from) == (T0 - timedelta(minutes=3), "alert")
    assert t.declared == T0
    assert (t.acknowledged, t.acknowledged_by) == (T0 + timedelta(minutes=4), "U_ALICE")
    assert t.mitigated == T0 + timedelta(minutes=25)
    assert t.resolved == T0 + timedelta(minutes=45)
    assert t.to_declare == timedelta(minutes=3)
    spans = {r.name: r.span for r in pm.response_times}
    minutes = {name: (s.from_detection, s.from_declaration) for name, s in spans.items()}
    assert minutes == {
        "Time to declare": (timedelta(minutes=3), None),
        "Time to acknowledge": (timedelta(minutes=7), timedelta(minutes=4)),
        "Time to mitigate": (timedelta(minutes=28), timedelta(minutes=25)),
        "Time to resolve": (timedelta(minutes=48), timedelta(minutes=45)),
    }
    assert t.duration == timedelta(minutes=48)
    ack = next(r for r in pm.response_times if r.name == "Time to acknowledge")
    assert (ack.target, ack.met) == (timedelta(hours=1), True)  # P2 when acknowledged


async def test_the_record_is_read_whole(core: Core, clock: FixedClock) -> None:
    pm = await drafted(core, clock)
    assert [(c.previous, c.level, c.source, c.applied) for c in pm.severity_history] == [
        (None, "P2", "rule", True),
        ("P2", "P1", "rule", True),
        ("P1", "P2", "person", True),
    ]
    assert pm.severity_history[1].reason == (
        "rule db-pool-critical: labels.alertname=CriticalConnectionPoolUtilization"
    )
    assert pm.peak_severity == "P1"
    assert [(r.run_id, r.outcome, r.grade) for r in pm.diagnostics] == [
        ("run-1", "ran", "red"),
        ("run-2", "ran", "green"),
    ]
    assert [(r.run_id, r.outcome) for r in pm.mitigations] == [
        ("run-3", "refused"),
        ("run-4", "ran"),
    ]
    terminate = pm.mitigations[1]
    assert (terminate.requested_by, terminate.approved_by, terminate.confirmed_by) == (
        "U_ALICE",
        ("U_CAROL",),
        "U_ALICE",
    )
    assert terminate.requested_at == T0 + timedelta(minutes=15)
    assert pm.diagnostics[0].columns == ("state", "count")  # as the step gave them
    assert pm.diagnostics[0].rows[1] == ("idle in transaction", "37")
    assert pm.diagnostics[1].columns == ("lag_s", "replica")  # none given: sorted
    assert [(u.at, u.status) for u in pm.updates] == [
        (T0 + timedelta(minutes=12), "mitigating"),
        (T0 + timedelta(minutes=40), "monitoring"),
    ]
    whats = [(m.channel, m.what, m.delivery) for m in pm.messages]
    assert ("broadcast", "update", "sent") not in whats  # the transcript names the channel
    assert [w for w in whats if w[0] == "#incidents"] == [
        ("#incidents", "announcement", "sent"),
        ("#incidents", "update", "sent"),
        ("#incidents", "update", "sent"),
        ("#incidents", "announcement", "sent"),
    ]
    own = [w[1] for w in whats if w[0] != "#incidents"]
    assert own == ["initial", "update", "alert summary", "alert summary", "update", "resolution"]
    people = {p.name: p for p in pm.people}
    assert people["U_ALICE"].roles == ("commander",)
    assert people["U_BOB"].roles == ("communications",)
    assert people["U_CAROL"].actions == 3  # approval, note, pin
    assert people["U_DAVE"].actions == 1
    assert people["alertmanager"].automation
    assert [(a.number, a.owner, a.status) for a in pm.action_items] == [
        (1, "U_CAROL", "done"),
        (2, None, "open"),
    ]
    assert [(a.name, a.count, a.status) for a in pm.alerts] == [
        ("HighQueryLatency", 2, "resolved"),
        ("CriticalConnectionPoolUtilization", 2, "resolved"),
    ]
    assert pm.root_cause.startswith("Deploy 4812")
    assert pm.went_poorly == ()


async def test_every_section_is_present_in_order(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    text = render_markdown(templates, await drafted(core, clock))
    headings = [line for line in text.splitlines() if re.match(r"#{1,3} ", line)]
    assert headings == SECTIONS
    assert "**DRAFT**" in text
    assert "✍️ **TO FILL:**" in text
    assert "2026-11-26 10:07 UTC | 2026-11-26 11:07 CET" in text  # UTC and the local zone
    assert_tables_keep_their_shape(text)


async def test_one_query_per_table_however_long_the_timeline(core: Core, clock: FixedClock) -> None:
    await full_incident(core, clock)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa.event.listen(core.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await build_postmortem(
            core.db, 1, scheme=core.incidents.scheme, incidents=core.incidents, now=clock.now()
        )
    finally:
        sa.event.remove(core.db.engine.sync_engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # incident, alert, timeline, follow-up, outbox, transcript, step run (the drafted root cause)
    assert len(selects) == 7, selects
