"""Local mode: a :class:`~bot.ports.chat.Chat` that keeps what would be posted as a transcript.

With no Slack credentials the whole delivery pipeline still runs; every channel,
message, pin and topic lands in the ``transcript`` table, and ``warroom incident
show`` prints it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from sqlmodel import col, select

from bot.clock import Clock
from bot.ports.chat import ChannelRef, Message
from bot.store.db import Database
from bot.store.models import Incident, TranscriptEntry

_counter = itertools.count(1)


_CHANNEL_MAX = 80  # TranscriptEntry.channel


class TranscriptChat:
    connected = False

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def open_channel(self, name: str, *, private: bool, marker: str) -> ChannelRef:
        channel = f"local:{marker.removeprefix('warroom:')}"[:32]
        await self._write(channel, "channel", f"#{name} opened", key=marker, name=name)
        return ChannelRef(id=channel, name=name)

    async def invite(
        self,
        channel: str,
        *,
        users: Sequence[str] = (),
        usergroups: Sequence[str] = (),
        emails: Sequence[str] = (),
    ) -> list[str]:
        people = [*users, *(f"group {g}" for g in usergroups), *emails]
        await self._write(channel, "invite", "invited " + ", ".join(people))
        return list(users)

    async def set_topic(self, channel: str, topic: str) -> None:
        await self._write(channel, "topic", topic)

    async def post(
        self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
    ) -> str:
        ts = f"{self.clock.now().timestamp():.6f}-{next(_counter)}"
        action = "reply" if thread_ts else ("card" if message.card else "message")
        await self._write(channel, action, message.text, ref=marker)
        return ts

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._write(channel, "card update", message.text)

    async def pin(self, channel: str, ts: str) -> None:
        await self._write(channel, "pin", "card pinned")

    async def bookmark(self, channel: str, title: str, url: str) -> None:
        await self._write(channel, "bookmark", f"{title}: {url}")

    async def find_marked(
        self, channel: str, marker: str, *, thread_ts: str | None = None
    ) -> str | None:
        async with self.db.transaction(read_only=True) as session:
            found = (
                await session.exec(
                    select(TranscriptEntry).where(
                        col(TranscriptEntry.channel) == channel, col(TranscriptEntry.ref) == marker
                    )
                )
            ).first()
        return None if found is None else f"{found.at.timestamp():.6f}-{found.id}"

    async def permalink(self, channel: str, ts: str) -> str | None:
        return None

    async def _write(
        self,
        channel: str,
        action: str,
        text: str,
        *,
        ref: str = "",
        key: str = "",
        name: str | None = None,
    ) -> None:
        async with self.db.transaction() as session:
            if key.startswith("warroom:"):  # the channel is being opened for this incident
                where = col(Incident.key) == key.removeprefix("warroom:")
            else:
                where = col(Incident.channel_id) == channel
            incident = (await session.exec(select(Incident).where(where))).first()
            incident_id = incident.id if incident else None
            if incident is not None and name is None:
                name = incident.channel_name
            # "#" and a name of Slack's full 80 characters would not fit the column.
            channel = (f"#{name}" if name else channel)[:_CHANNEL_MAX]
            session.add(
                TranscriptEntry(
                    incident_id=incident_id,
                    at=self.clock.now(),
                    channel=channel,
                    action=action,
                    ref=ref,
                    text=text,
                )
            )


async def transcript_of(db: Database, incident_id: int) -> list[TranscriptEntry]:
    async with db.transaction(read_only=True) as session:
        query = (
            select(TranscriptEntry)
            .where(col(TranscriptEntry.incident_id) == incident_id)
            .order_by(col(TranscriptEntry.id))
        )
        return list((await session.exec(query)).all())
