"""The fault drills' audit (bench/_drill.py) must fail a drill that lost order or posted twice."""

from __future__ import annotations

from bench._drill import audit
from bot.clock import FixedClock
from bot.delivery.outbox import enqueue
from bot.incidents.lifecycle import Incidents
from bot.store.db import Database
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
