"""The card's follow-ups read from the database: counted in SQL, open first, newest first, each
with its ticket's key and link once it is filed."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FixedClock
from bot.incidents.card import CardView, load_card
from bot.incidents.followups import MAX_FOLLOW_UPS_SHOWN, TICKET_KIND, FollowUpTally
from bot.incidents.lifecycle import Incidents
from bot.store.db import Database
from bot.store.models import ExternalRecord, FollowUp, Incident


async def filed(db: Database, incident: Incident, item: FollowUp, key: str, url: str) -> None:
    """What the ticket delivery writes when a ticket is filed: the record and the link."""
    now = item.created_at
    assert incident.id is not None
    async with db.transaction() as session:
        session.add(
            ExternalRecord(
                incident_id=incident.id,
                ref=f"ticket:ops:{item.id}",
                kind=TICKET_KIND,
                target="ops",
                vendor="Jira",
                follow_up_id=item.id,
                external_id=f"100{item.id}",
                url=url,
                state="To Do",
                data={"key": key},
                created_at=now,
                updated_at=now,
            )
        )
        row = await session.get(FollowUp, item.id)
        assert row is not None
        row.url = url
        session.add(row)


async def done(db: Database, item: FollowUp, clock: FixedClock) -> None:
    async with db.transaction() as session:
        row = await session.get(FollowUp, item.id)
        assert row is not None
        row.status, row.done_at = "done", clock.now()
        session.add(row)


async def test_the_card_counts_follow_ups_and_lists_open_then_newest_with_tickets(
    db: Database, incidents: Incidents, clock: FixedClock
) -> None:
    made = await incidents.declare(title="Queue stuck", actor="U1")
    assert (await card_of(db, incidents, made)).follow_ups == FollowUpTally()
    items = []
    for n in range(4):
        items.append(await incidents.add_follow_up(made.key, f"item {n}", actor="U1", owner="U0B"))
        clock.advance(timedelta(minutes=1))
    await filed(db, made, items[1], "OPS-12", "https://acme.atlassian.net/browse/OPS-12")
    await done(db, items[0], clock)
    tally = (await card_of(db, incidents, made)).follow_ups
    assert (tally.open, tally.done, tally.more) == (3, 1, 0)
    assert [(i.text, i.done) for i in tally.shown] == [
        ("item 3", False),
        ("item 2", False),
        ("item 1", False),
        ("item 0", True),
    ]
    ticket = tally.shown[2]
    assert (ticket.ticket, ticket.url, ticket.owner) == (
        "OPS-12",
        "https://acme.atlassian.net/browse/OPS-12",
        "U0B",
    )
    assert tally.shown[0].ticket is None
    assert tally.shown[0].url is None


async def test_fifty_follow_ups_are_counted_and_only_the_first_few_read(
    db: Database, incidents: Incidents, clock: FixedClock
) -> None:
    made = await incidents.declare(title="Storm", actor="U1")
    items = []
    for n in range(50):
        items.append(await incidents.add_follow_up(made.key, f"item {n}", actor="U1"))
        clock.advance(timedelta(seconds=1))
    for item in items[::2]:
        await done(db, item, clock)
    tally = (await card_of(db, incidents, made)).follow_ups
    assert (tally.open, tally.done) == (25, 25)
    assert len(tally.shown) == MAX_FOLLOW_UPS_SHOWN
    assert tally.more == 50 - MAX_FOLLOW_UPS_SHOWN
    assert [i.text for i in tally.shown] == ["item 49", "item 47", "item 45", "item 43", "item 41"]


async def card_of(db: Database, incidents: Incidents, made: Incident) -> CardView:
    async with db.transaction(read_only=True) as session:
        incident = await session.get(Incident, made.id)
        assert incident is not None
        return await load_card(session, incident, incidents.scheme)
