"""The card read from the database: counts over every alert, lines and links from the newest."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.clock import FixedClock
from bot.incidents.card import ALERTS_READ, build_card, load_card
from bot.incidents.lifecycle import Incidents
from bot.store.db import Database
from bot.store.models import Alert


async def test_a_large_incident_card_counts_everything_and_reads_only_the_newest(
    db: Database, incidents: Incidents, clock: FixedClock
) -> None:
    made = await incidents.declare(title="Storm", actor="t")
    start = clock.now()
    async with db.transaction() as session:
        for n in range(ALERTS_READ + 30):
            session.add(
                Alert(
                    incident_id=made.id,
                    source="alertmanager",
                    fingerprint=f"f{n}",
                    status="resolved" if n % 4 == 0 else "firing",
                    labels={"alertname": f"A{n}"},
                    links={"runbook": f"https://runbooks/{n}"} if n % 10 == 3 else {},
                    first_seen=start,
                    last_seen=start + timedelta(seconds=n),
                    count=n + 1,
                    raw={"n": n},
                )
            )
    async with db.transaction(read_only=True) as session:
        card = await load_card(session, made, incidents.scheme)
        every = list((await session.exec(select(Alert))).all())
    whole = build_card(made, every, incidents.scheme)
    assert (card.alerts_firing, card.alerts_resolved) == (60, 20)
    assert card.alerts_total_notifications == sum(range(1, 81))
    assert [line.name for line in card.alerts] == ["A79", "A78", "A77", "A75", "A74"]
    assert card.links == {"runbook": "https://runbooks/73"}
    assert card == whole  # the same card as from every alert
