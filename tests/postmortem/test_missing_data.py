"""Drafts of incidents with little on record: prompts and dashes, never a crash or a guess."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.core import Core
from bot.errors import IncidentNotFound
from bot.incidents.lifecycle import Change
from bot.postmortem import EVIDENCE_LIMIT, PostMortem, build_postmortem, render_markdown
from bot.templating import Templates

from ..conftest import T0
from .checks import assert_tables_keep_their_shape


async def draft(core: Core, clock: FixedClock, key: str = "INC-0001", **kw: int) -> PostMortem:
    return await build_postmortem(
        core.db, key, scheme=core.incidents.scheme, incidents=core.incidents, now=clock.now(), **kw
    )


async def test_open_never_acknowledged_no_alerts(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    await core.incidents.declare(
        title="Checkout slow", actor="U1", severity="P1", acknowledge=False
    )
    clock.advance(timedelta(minutes=45))
    pm = await draft(core, clock)
    t = pm.times
    assert (t.detected, t.detected_from, t.acknowledged, t.resolved) == (
        T0,
        "declaration",
        None,
        None,
    )
    assert t.duration == timedelta(minutes=45)
    assert t.ongoing
    ack = next(r for r in pm.response_times if r.name == "Time to acknowledge")
    assert (ack.span.from_detection, ack.target, ack.met) == (None, timedelta(minutes=15), False)
    assert pm.went_poorly == (
        "No alert fired: a person noticed it first.",
        "Never acknowledged; the P1 response time is 15 min.",
        "No update for 45 min after 10:00 UTC; P1 asks for one every 30 min.",
    )
    assert pm.root_cause_hints == ("Severity P1 (person): set by U1",)
    text = render_markdown(templates, pm)
    for expected in (
        "⚠️ INC-0001 is still **investigating**: its times run to 2026-11-26 10:45 UTC.",
        "| Resolved | — (still open) |",
        "| Duration | 45 min so far |",
        "- Acknowledged: — (never acknowledged)",
        "- Mitigated: — (not mitigated)",
        "- Resolved: — (still investigating)",
        "| acknowledge | — | — | 15 min for P1 (missed) |",
        "| mitigate | — | — | — |",
        "No diagnostic step was run from warroom.",
        "No mitigation step was run from warroom.",
        "No update was sent.",
        "No alert was attached to this incident.",
        "> ✍️ **TO FILL:** What happened, in two or three sentences",
        "> ✍️ **TO FILL:** The root cause: why it happened",
        "- Severity P1 \\(person\\): set by U1",
        "| Commander | — |",
        "- [ ] Acknowledge alert — never acknowledged",
        "- [ ] Close incident ticket — still investigating",
        "- [ ] Schedule post-mortem — within 48 hours of resolution",
        "| Duration \\(detection to resolution\\) | 45 min so far \\(still open\\) |",
    ):
        assert expected in text, expected
    assert "## Action items" in text
    assert "| # | Action |" not in text
    assert_tables_keep_their_shape(text)


async def test_open_and_not_yet_late(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Typo", actor="U1", severity="P4", acknowledge=False)
    clock.advance(timedelta(minutes=5))
    pm = await draft(core, clock)
    ack = next(r for r in pm.response_times if r.name == "Time to acknowledge")
    assert ack.met is None  # 24 h to go: neither met nor missed
    assert pm.went_poorly == ("No alert fired: a person noticed it first.",)


async def test_declared_by_a_person_is_acknowledged_at_once(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Login errors", actor="U1", severity="P2")
    clock.advance(timedelta(minutes=10))
    await core.incidents.resolve("INC-1", actor="U1")
    pm = await draft(core, clock)
    assert pm.times.to_acknowledge.from_declaration == timedelta(0)
    assert pm.times.to_mitigate.from_detection == timedelta(minutes=10)  # resolving mitigates
    assert "Acknowledged 0 s after detection, within the P2 response time (1 h)." in pm.went_well


async def test_reopened_incident_reports_the_last_cycle(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Queue backlog", actor="U1", severity="P3")
    clock.advance(timedelta(minutes=20))
    await core.incidents.resolve("INC-1", actor="U1")
    clock.advance(timedelta(minutes=10))
    await core.incidents.reopen("INC-1", actor="U2", reason="backlog again")
    clock.advance(timedelta(minutes=30))
    await core.incidents.resolve("INC-1", actor="U2")
    pm = await draft(core, clock)
    assert pm.times.resolved == T0 + timedelta(hours=1)
    assert pm.times.duration == timedelta(hours=1)
    assert pm.reopened == 1
    assert "Reopened 1 time(s) after being resolved." in pm.went_poorly


async def test_an_alert_after_a_person_noticed(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(
        title="Slow pages", actor="U1", severity="P2", detected_at=T0 - timedelta(minutes=5)
    )
    pm = await draft(core, clock)
    assert (pm.times.detected, pm.times.detected_from) == (T0 - timedelta(minutes=5), "record")
    assert pm.times.to_declare == timedelta(minutes=5)


async def test_unknown_incident(core: Core, clock: FixedClock) -> None:
    with pytest.raises(IncidentNotFound) as by_key:
        await draft(core, clock, "INC-0404")
    assert by_key.value.key == "INC-0404"
    with pytest.raises(IncidentNotFound) as by_id:
        await build_postmortem(
            core.db, 99, scheme=core.incidents.scheme, incidents=core.incidents, now=T0
        )
    assert by_id.value.key == "#99"


async def test_a_long_timeline_keeps_its_key_events(core: Core, clock: FixedClock) -> None:
    await core.incidents.declare(title="Flapping", actor="U1", severity="P3")
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, "INC-1")
        flaps = [Change("alert", "alert firing: disk") for _ in range(4)]
        await core.incidents.record(session, incident, "am", flaps)
        notes = [Change("note", f"looked at host {n}") for n in range(40)]
        await core.incidents.record(session, incident, "U1", notes)
    clock.advance(timedelta(minutes=1))
    await core.incidents.set_status("INC-1", "identified", actor="U1")
    pm = await draft(core, clock, timeline_limit=10)
    kinds = [e.kind for e in pm.timeline]
    assert kinds[0] == "declared"
    assert kinds[-1] == "status"
    assert len(pm.timeline) == 10
    folded = next(e for e in pm.timeline if e.kind == "alert")
    assert (folded.repeats, folded.until) == (4, T0)
    assert pm.timeline_omitted == (("note", 33),)  # 41 others, 8 kept: 4 first, 4 last


async def test_without_a_root_cause_the_evidence_gives_hints(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    await core.incidents.declare(title="Pool exhausted", actor="U1", severity="P1")
    clock.advance(timedelta(minutes=2))
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, "INC-1")
        red = {
            "run_id": "r1",
            "runbook": "db",
            "step": "connections",
            "kind": "diagnostic",
            "grade": "red",
            "summary": "connections were at 98% of max_connections at 10:42",
            "rows": [{"used": 98, "max": 100}],
        }
        broken = red | {"run_id": "r2", "step": "locks", "grade": "error", "summary": "timeout"}
        await core.incidents.record(
            session,
            incident,
            "U1",
            [Change("step_run", "ran db/connections", red), Change("step_run", "ran", broken)],
        )
    clock.advance(timedelta(minutes=8))
    await core.incidents.resolve("INC-1", actor="U1")
    pm = await draft(core, clock)
    assert pm.root_cause == ""
    assert pm.root_cause_hints == (
        "Diagnostic db/connections was RED at 10:02 UTC: "
        "connections were at 98% of max_connections at 10:42",
        "Severity P1 (person): set by U1",
    )
    assert "Diagnostic db/locks failed: timeout" in pm.went_poorly
    text = render_markdown(templates, pm)
    section = text.split("## Root cause")[1].split("## Contributing factors")[0]
    assert section == (
        "\n\n> ✍️ **TO FILL:** The root cause: why it happened, not only what broke.\n\n"
        "Hints from the record:\n\n"
        "- Diagnostic db/connections was RED at 10:02 UTC: connections were at 98% of "
        "max\\_connections at 10:42\n"
        "- Severity P1 \\(person\\): set by U1\n\n"
    )
    assert pm.diagnostics[0].columns == ("max", "used")  # no column order given: sorted


async def test_many_runs_show_the_telling_ones_first(
    core: Core, clock: FixedClock, templates: Templates
) -> None:
    await core.incidents.declare(title="Noisy", actor="U1", severity="P3")
    green = {"kind": "diagnostic", "runbook": "disk", "step": "usage", "grade": "green"}
    runs = [green | {"run_id": f"g{n}", "summary": f"{n}% used"} for n in range(45)]
    runs.insert(30, green | {"run_id": "red", "grade": "red", "summary": "99% used"})
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, "INC-1")
        changes = [Change("step_run", "ran disk/usage", data) for data in runs]
        await core.incidents.record(session, incident, "U1", changes)
    pm = await draft(core, clock)
    assert len(pm.diagnostics) == EVIDENCE_LIMIT
    assert "red" in [r.run_id for r in pm.diagnostics]
    assert pm.diagnostics_omitted == (("green", 6),)
    assert "Diagnostics run | 46 \\(45 green, 1 red\\)" in render_markdown(templates, pm)
    assert "6 further diagnostic run(s) are not shown (6 green)." in render_markdown(templates, pm)
