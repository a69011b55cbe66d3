"""The fault drills' audits must fail a drill that lost order or posted twice (bench/_drill.py),
or escalated twice or wrongly (bench/_escalation.py); a clean record passes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bench import _escalation as esc
from bench._drill import audit
from bench._escalation import (
    RESPONSE_TIME,
    EscalationRecord,
    IncidentFacts,
    PageRow,
    audit_escalation,
)
from bot.clock import FixedClock
from bot.delivery.outbox import enqueue
from bot.incidents.lifecycle import Incidents
from bot.store.db import Database
from tests.conftest import T0
from tests.fakes.slack_api import FakeSlack, create_fake_slack
from tests.fakes.slack_state import BOT_USER_ID, Channel


async def landed(db: Database, incidents: Incidents, clock: FixedClock, ts: list[str]) -> None:
    """One incident whose channel lane delivered one message per ``ts``, in this order."""
    made = await incidents.declare(title="drill", actor="t")
    async with db.transaction() as session:
        for n, stamp in enumerate(ts):
            row = await enqueue(
                session,
                lane=made.key,
                kind="message",
                payload={"text": f"#{n}"},
                now=clock.now(),
                incident_id=made.id,
            )
            assert row is not None
            row.status, row.result = "done", {"ts": stamp}
            session.add(row)


def post(fake: FakeSlack, channel: Channel, marker: str) -> None:
    fake.workspace.add_message(
        channel,
        user=BOT_USER_ID,
        text=marker,
        blocks=[{"type": "section", "block_id": marker, "text": {"type": "mrkdwn", "text": "x"}}],
        from_bot=True,
    )


async def test_a_clean_run_passes(
    db: Database, incidents: Incidents, clock: FixedClock, database_url: str
) -> None:
    await landed(db, incidents, clock, ["100.000001", "100.000002"])
    fake = create_fake_slack()
    channel = fake.add_channel("inc-20261126-0001-drill")
    post(fake, channel, "wr-1")
    post(fake, channel, "wr-2")
    figures, problems = audit(database_url, fake, accepted=0, groups=1)
    assert problems == []
    assert (figures["channels"], figures["messages_with_markers"]) == (1, 2)


async def test_a_double_post_and_a_lost_order_fail_the_drill(
    db: Database, incidents: Incidents, clock: FixedClock, database_url: str
) -> None:
    await landed(db, incidents, clock, ["100.000002", "100.000001"])  # second went out first
    fake = create_fake_slack()
    channel = fake.add_channel("inc-20261126-0001-drill")
    post(fake, channel, "wr-1")
    post(fake, channel, "wr-2")
    post(fake, channel, "wr-2")  # a retry that did not look for its marker
    fake.add_channel("inc-20261126-0001-drill-1")  # and a second channel for the incident
    _, problems = audit(database_url, fake, accepted=1, groups=1)
    assert problems == [
        "0 alert rows (0 distinct) for 1 accepted",
        "2 incident channels for 1 groups",
        "1 message(s) posted more than once: ['wr-2']",
        "1 message(s) out of order in their channel",
    ]


# -- the escalation drill's audit (bench/_escalation.py), on hand-made records -----------------

DUE = T0 + RESPONSE_TIME


def clean_record() -> EscalationRecord:
    """INC-0001 left alone (escalated twice, paged at secondary), INC-0002 acknowledged and
    INC-0003 resolved in time; PagerDuty saw each page once."""
    keys = esc.ROUTING_KEYS
    intent = {"INC-0001": esc.ESCALATE, "INC-0002": esc.ACKNOWLEDGE, "INC-0003": esc.RESOLVE}
    early = T0 + timedelta(seconds=5)
    incidents = {
        "INC-0001": IncidentFacts(T0),
        "INC-0002": IncidentFacts(T0, acknowledged_at=early),
        "INC-0003": IncidentFacts(T0, resolved_at=early),
    }
    pages = [
        ("INC-0001", "primary", "trigger"),
        ("INC-0001", "secondary", "trigger"),
        ("INC-0002", "primary", "trigger"),
        ("INC-0002", "primary", "acknowledge"),
        ("INC-0003", "primary", "trigger"),
        ("INC-0003", "primary", "resolve"),
    ]
    rows = [PageRow(n, k, a, t, "done") for n, (k, t, a) in enumerate(pages, 1)]
    events = [event(keys[t], a, k) for k, t, a in pages]
    return EscalationRecord(
        intent=intent,
        incidents=incidents,
        escalations=[("INC-0001", 1, DUE), ("INC-0001", 2, DUE + timedelta(seconds=10))],
        page_rows=rows,
        outbox={"done": 30},
        events=events,
    )


def event(routing_key: str, action: str, key: str) -> dict[str, Any]:
    sent: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": key}
    if action == "trigger":
        sent["payload"] = {"summary": f"{key} [P2] storm group 1"}
    return sent


def test_a_clean_escalation_record_passes() -> None:
    figures, problems = audit_escalation(clean_record())
    assert problems == []
    assert figures["escalated_events"] == 2
    assert figures["pagerduty_events"] == {
        "primary:trigger": 3,
        "secondary:trigger": 1,
        "primary:acknowledge": 1,
        "primary:resolve": 1,
    }


def test_a_resend_is_allowed_only_for_a_row_the_killed_worker_held() -> None:
    record = clean_record()
    record.events.append(event(esc.ROUTING_KEYS["secondary"], "trigger", "INC-0001"))
    _, problems = audit_escalation(record)
    assert problems == [
        "INC-0001: trigger at `secondary` sent 2 times (expected 1, 0 in flight at the kill)"
    ]
    record.in_flight = {2}  # the secondary's trigger row: sent, then its worker was killed
    figures, problems = audit_escalation(record)
    assert (problems, figures["pagerduty_resent_after_kill"]) == ([], 1)


def test_escalating_twice_or_an_acknowledged_incident_fails_the_drill() -> None:
    record = clean_record()
    record.escalations += [
        ("INC-0001", 1, DUE + timedelta(seconds=1)),  # a second replica fired step 1 again
        ("INC-0002", 1, DUE),  # acknowledged, still escalated
    ]
    record.page_rows.append(PageRow(7, "INC-0002", "trigger", "secondary", "done"))
    record.events.append(event(esc.ROUTING_KEYS["secondary"], "trigger", "INC-0002"))
    record.events.append(event(esc.ROUTING_KEYS["primary"], "acknowledge", "d41d8cd98f00"))
    record.outbox["failed"] = 1
    _, problems = audit_escalation(record)
    assert problems == [
        "INC-0001 (never acknowledged): escalation steps fired [1, 1, 2], "
        "expected each of [1, 2] once",
        "INC-0002 (acknowledged before it was due): escalated, steps [1]",
        "INC-0002: 1 outbox row(s) to trigger `secondary`, expected 0",
        "a acknowledge at `primary` with dedup_key 'd41d8cd98f00', not an incident",
        "INC-0002: trigger at `secondary` sent 1 times (expected 0, 0 in flight at the kill)",
        "outbox rows not done: {'failed': 1}",
    ]


def test_a_page_lost_early_or_under_another_key_fails_the_drill() -> None:
    record = clean_record()
    record.escalations = [("INC-0001", 1, T0), ("INC-0001", 2, DUE)]  # step 1 before its time
    record.events = [e for e in record.events if e["routing_key"] != esc.ROUTING_KEYS["secondary"]]
    record.events[0]["payload"]["summary"] = "INC-0003 [P2] storm group 3"  # the wrong key
    record.incidents["INC-0003"] = IncidentFacts(T0, resolved_at=DUE)  # resolved too late
    _, problems = audit_escalation(record)
    assert problems == [
        "INC-0001: escalation step 1 fired before its response time",
        "INC-0003: resolved only after its escalation was due",
        "a trigger for 'INC-0003 [P2] storm group 3' carries dedup_key INC-0001",
        "INC-0001: trigger at `secondary` never reached PagerDuty",
    ]
