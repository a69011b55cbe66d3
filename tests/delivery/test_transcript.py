"""Local mode's transcript keeps what would have been posted, whatever the alert's text."""

from __future__ import annotations

from bot.clock import FixedClock
from bot.delivery.transcript import TranscriptChat, transcript_of
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.store.db import Database


async def test_a_channel_name_of_slacks_full_length_is_kept(
    db: Database, clock: FixedClock
) -> None:
    incidents = Incidents(db, clock=clock, scheme=P1_P4)
    made = await incidents.declare(title="x" * 200, actor="t")
    name = f"inc-0001-{'a' * 71}"  # 80 characters, Slack's limit
    chat = TranscriptChat(db, clock)
    await chat.open_channel(name, private=False, marker=f"warroom:{made.key}")
    assert made.id is not None
    (entry,) = await transcript_of(db, made.id)
    assert entry.channel.startswith("#inc-0001-aaaa")
    assert entry.text == f"#{name} opened"  # the full name is in the text
