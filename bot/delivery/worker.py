"""The delivery worker: outbox rows to the chat, in order per lane, exactly once.

- 429: retried after ``Retry-After`` (not counted as a failed attempt).
- 5xx, timeouts, lost connections: retried with exponential backoff; if the call may
  have been applied (or a worker died holding the row), the retry first looks for the
  message's marker.
- A permanent refusal, or ``max_attempts`` transient failures: the row is marked
  failed, with the error, and shown by ``warroom incident show``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bot.clock import Clock
from bot.delivery import quiet
from bot.delivery.home import DEFAULT_EVERY, HOME, HomeDelivery
from bot.delivery.outbox import Deliver, claim, renew, settle
from bot.delivery.paging import NoPager, PagingDelivery, PagingPolicy
from bot.delivery.silences import NoSilencer, SilenceDelivery
from bot.errors import StorageUnavailable
from bot.incidents.card import CardView, load_card
from bot.incidents.channel import channel_name, with_suffix
from bot.incidents.lifecycle import Change, Incidents
from bot.ports import errors as port
from bot.ports.chat import Chat, ChatError, Message, RateLimited, Rejected, Transient
from bot.ports.paging import Pager, PageRefused, PageThrottled, PageUnavailable
from bot.ports.silencing import Refused, Silencer, Unavailable
from bot.runbooks import Runbooks
from bot.runbooks import text as runbook_text
from bot.runbooks.suggest import next_steps
from bot.store.db import Database
from bot.store.models import Alert, Incident, OutboxRow

log = logging.getLogger(__name__)

MAX_SUFFIXES = 5
#: Rows under way at most while :attr:`DeliveryWorker.busy` says the loop has better to do.
BUSY_BATCH = 2


class NoChannel(Exception):
    """The incident has no channel (yet, or its creation failed)."""


class NotYet(Exception):
    """The row depends on another lane's row that is still pending: try again shortly."""


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        chat: Chat,
        incidents: Incidents,
        *,
        clock: Clock,
        channel_pattern: str = "inc-{date}-{number}-{slug}",
        private_channels: bool = False,
        broadcast: str | None = None,
        public_url: str | None = None,
        worker_id: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
        batch: int = 20,
        stop_grace: float = 5.0,
        runbooks: Runbooks | None = None,
        silencer: Silencer | None = None,
        pager: Pager | None = None,
        paging: PagingPolicy | None = None,
        kinds: Mapping[str, Deliver] | None = None,
        home_every: timedelta = DEFAULT_EVERY,
    ) -> None:
        self.runbooks = runbooks
        self.db = db
        self.chat = chat
        self.incidents = incidents
        self.clock = clock
        self.channel_pattern = channel_pattern
        self.private_channels = private_channels
        self.broadcast = broadcast
        self.public_url = public_url
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.max_attempts = max_attempts
        self.batch = batch
        #: Seconds the rows under way get to finish once the worker is told to stop.
        self.stop_grace = stop_grace
        self.wake = asyncio.Event()
        #: True while something more urgent shares this event loop (the intake batcher with
        #: requests waiting on their commit): the worker then has at most ``BUSY_BATCH`` rows
        #: under way, so a storm's answers (and Slack's acks) are not kept waiting by it.
        self.busy: Callable[[], bool] = lambda: False
        #: Kinds delivered to another port than the chat, by kind (silences: Alertmanager).
        self.kinds: dict[str, Deliver] = SilenceDelivery(
            db, incidents, silencer, max_attempts=max_attempts
        ).kinds()
        #: Pages and escalation steps (paging port: PagerDuty).
        self.kinds |= PagingDelivery(
            db, incidents, pager, paging, max_attempts=max_attempts
        ).kinds()
        #: The other integrations' kinds (status page, tickets, export), composed by the caller.
        self.kinds |= dict(kinds or {})
        #: A status page is configured: the card offers its buttons (``bot.delivery.statuspage``).
        self.status_page_ready = False
        #: People's home pages (``bot.delivery.home``): rows of no incident.
        self.homes = HomeDelivery(
            db, chat, incidents.scheme, clock, public_url=public_url, every=home_every
        )

    async def run_once(self) -> int:
        """Claim and deliver one batch (lanes in parallel); return how many rows were tried."""
        rows = await claim(
            self.db,
            worker=self.worker_id,
            now=self.clock.now(),
            lease=self.lease,
            limit=self.batch,
        )
        await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def run_forever(self, stop: asyncio.Event, *, idle: float = 0.5) -> None:
        """Deliver rows as they come due, up to ``batch`` at once, each in its own task.

        A slow row (a diagnostic waiting on its database, posts waiting on Slack's per-channel
        rate) holds up only its own lane: a slot is refilled as soon as any row finishes. The
        leases of rows under way are renewed, so neither this worker nor another takes them
        again while they wait. On ``stop``, the rows under way are finished.
        """
        running: dict[asyncio.Task[None], int] = {}
        renewed = time.monotonic()
        try:
            while not stop.is_set():
                if running and time.monotonic() - renewed > self.lease.total_seconds() / 3:
                    await self._renew([i for t, i in running.items() if not t.done()])
                    renewed = time.monotonic()
                free = (BUSY_BATCH if self.busy() else self.batch) - len(running)
                if free > 0 and await self._start(running, free):
                    continue  # more may be due at once
                self.wake.clear()
                waiters = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self.wake.wait()),
                }
                await asyncio.wait(
                    waiters | running.keys(), timeout=idle, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waiters:
                    waiter.cancel()
                for task in [t for t in running if t.done()]:
                    del running[task]
                    _report(task)
        finally:
            await self._wind_down(running)

    async def _wind_down(self, running: dict[asyncio.Task[None], int]) -> None:
        """Give the rows under way :attr:`stop_grace` to finish, then cancel the rest.

        A row waiting on Slack's rate limit could otherwise hold a stopping server for minutes
        (and a container's stop is followed by SIGKILL after 10 s). A cancelled row keeps its
        claim until the lease runs out; the next worker retries it, looking for its marker
        first, so a message that did go out is not posted twice.
        """
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=self.stop_grace)
        for task in late:
            task.cancel()
        if late:
            log.info("stopping: %d outbox row(s) left for the next worker", len(late))
        for outcome in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.warning("delivery stopped with an error: %s", outcome)

    async def _start(self, running: dict[asyncio.Task[None], int], free: int) -> int:
        """Claim up to ``free`` due rows and start delivering each; return how many."""
        try:
            rows = await claim(
                self.db, worker=self.worker_id, now=self.clock.now(), lease=self.lease, limit=free
            )
        except StorageUnavailable as error:
            log.warning("delivery paused, database unavailable: %s", error)
            await asyncio.sleep(2)
            return 0
        for row in rows:
            assert row.id is not None
            running[asyncio.create_task(self._deliver(row))] = row.id
        return len(rows)

    async def _renew(self, ids: list[int]) -> None:
        try:
            held = await renew(
                self.db, worker=self.worker_id, ids=ids, now=self.clock.now(), lease=self.lease
            )
        except StorageUnavailable as error:
            log.warning("could not renew leases, database unavailable: %s", error)
            return
        if held < len(ids):  # settled meanwhile, or the lease ran out before the renewal
            log.info("%d outbox row(s) under way no longer held", len(ids) - held)

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Deliver until nothing is due (tests, CLI); return the number of rows tried."""
        total = 0
        for _ in range(max_rounds):
            worked = await self.run_once()
            if not worked:
                return total
            total += worked
        raise RuntimeError(f"outbox still busy after {max_rounds} rounds")

    # -- one row -----------------------------------------------------------

    async def _deliver(self, row: OutboxRow) -> None:
        assert row.id is not None
        now = self.clock.now()
        try:
            result = await self._execute(row)
        except (RateLimited, PageThrottled, port.Throttled) as error:
            wait = timedelta(seconds=max(error.retry_after, 1.0))
            await self._settle(row, error=str(error), retry_at=now + wait, count_attempt=False)
        except NotYet as error:
            wait = timedelta(seconds=1)
            await self._settle(row, error=str(error), retry_at=now + wait, count_attempt=False)
        except (
            NoSilencer,
            NoPager,
            port.NoAdapter,
        ) as error:  # left for a process with the adapter (server)
            wait = timedelta(seconds=30)
            await self._settle(row, error=str(error), retry_at=now + wait, count_attempt=False)
        except (Transient, Unavailable, PageUnavailable, port.Unavailable) as error:
            attempts = row.attempts + 1
            retry: datetime | None = None
            if attempts < self.max_attempts:
                retry = now + _backoff(attempts)
            await self._settle(row, error=str(error), retry_at=retry, uncertain=error.uncertain)
        except (Rejected, NoChannel, Refused, PageRefused, port.Refused) as error:
            log.error(
                "outbox row %s (%s) failed: %s",
                row.id,
                row.kind,
                error,
                extra={"incident": row.lane},
            )
            await self._settle(row, error=str(error) or type(error).__name__)
        except ChatError as error:  # an unknown failure: the call may have gone through
            retry_at = now + _backoff(row.attempts + 1)
            await self._settle(row, error=str(error), retry_at=retry_at, uncertain=True)
        else:
            await self._settle(row, result=result)

    async def _settle(self, row: OutboxRow, **outcome: Any) -> None:
        assert row.id is not None
        async with self.db.transaction() as session:
            settled = await settle(
                session, row.id, worker=self.worker_id, now=self.clock.now(), **outcome
            )
        if settled is None:
            log.warning("outbox row %s: lease lost, outcome dropped", row.id)

    async def _execute(self, row: OutboxRow) -> dict[str, Any]:
        if row.kind == HOME:
            return await self.homes.deliver(row)
        incident = await self._incident(row)
        marker = f"wr-{row.id}"
        kind = row.kind
        if (deliver := self.kinds.get(kind)) is not None:
            return await deliver(row, incident)
        if kind == "open_channel":
            return await self._open_channel(incident, marker)
        if kind == "announce":
            return await self._announce(row, incident, marker)
        if kind == "message" and row.lane == "broadcast":
            return await self._post(row, self._broadcast(), Message(row.payload["text"]), marker)
        channel = incident.channel_id
        if channel is None:
            raise NoChannel(f"{incident.key} has no channel")
        if kind == "invite":
            invited = await self.chat.invite(
                channel,
                users=row.payload.get("users", []),
                usergroups=row.payload.get("usergroups", []),
                emails=row.payload.get("emails", []),
            )
            return {"invited": invited}
        if kind == "topic":
            await self.chat.set_topic(channel, topic(incident))
            return {}
        if kind == "card":
            return await self._card(row, incident, channel, marker)
        if kind == "bookmarks":
            card = await self._card_view(incident)
            added = []
            for title, url in _bookmarks(card.links, self._page(incident)):
                await self.chat.bookmark(channel, title, url)
                added.append(title)
            return {"bookmarks": added}
        if kind == "message":
            return await self._post(row, channel, Message(row.payload["text"]), marker)
        if kind == "alert_summary":
            return await self._alert_summary(row, incident, channel, marker)
        if kind == "diagnose":
            return await self._diagnose(row, incident, channel, marker)
        if kind == quiet.REMINDER:
            async with self.db.transaction(read_only=True) as session:
                text = await quiet.reminder_text(session, incident, row.payload.get("since", ""))
            if text is None:
                return {"skipped": "no longer quiet in monitoring"}
            return await self._post(row, channel, Message(text), marker)
        if kind == "reminder":
            card = await self._card_view(incident)
            overdue = int(row.payload.get("overdue_min", 0))
            message = Message(row.payload.get("text", ""), card=card, reminder_overdue_min=overdue)
            return await self._post(row, channel, message, marker)
        raise Rejected(f"unknown outbox kind {kind!r}")

    async def _open_channel(self, incident: Incident, marker: str) -> dict[str, Any]:
        if incident.channel_id:
            return {"channel": incident.channel_id, "name": incident.channel_name}
        base = channel_name(self.channel_pattern, incident)
        for attempt in range(MAX_SUFFIXES):
            name = base if attempt == 0 else with_suffix(base, attempt)
            try:
                ref = await self.chat.open_channel(
                    name, private=self.private_channels, marker=f"warroom:{incident.key}"
                )
            except Rejected as error:
                if error.code == "name_taken":
                    continue
                raise
            async with self.db.transaction() as session:
                locked = await self.incidents.lock(session, _id(incident))
                locked.channel_id = ref.id
                locked.channel_name = ref.name
                await self.incidents.record(
                    session,
                    locked,
                    "warroom",
                    [Change("channel", f"channel #{ref.name} opened", {"channel": ref.id})],
                )
            return {"channel": ref.id, "name": ref.name}
        raise Rejected("name_taken", "conversations.create")

    async def _card(
        self, row: OutboxRow, incident: Incident, channel: str, marker: str
    ) -> dict[str, Any]:
        card = await self._card_view(incident)
        message = Message(card_line(card), card=card)
        if incident.card_ts:
            await self.chat.update(channel, incident.card_ts, message)
            return {"ts": incident.card_ts, "version": card.version}
        result = await self._post(row, channel, message, marker)
        ts = result["ts"]
        await self.chat.pin(channel, ts)
        async with self.db.transaction() as session:
            locked = await self.incidents.lock(session, _id(incident))
            locked.card_ts = ts
            session.add(locked)
        return {"ts": ts, "version": card.version, "pinned": True}

    async def _post(
        self,
        row: OutboxRow,
        channel: str,
        message: Message,
        marker: str,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        # An earlier attempt may have posted it: its answer was lost (uncertain), or it posted
        # and a later call of the same row failed (a card's pin answered 429, say).
        if row.uncertain or row.last_error:
            found = await self.chat.find_marked(channel, marker, thread_ts=thread_ts)
            if found is not None:
                log.info("outbox row %s was already posted (%s): not sending again", row.id, found)
                return {"ts": found, "recovered": True}
        ts = await self.chat.post(channel, message, marker=marker, thread_ts=thread_ts)
        return {"ts": ts}

    async def _announce(self, row: OutboxRow, incident: Incident, marker: str) -> dict[str, Any]:
        channel = self._broadcast()
        if incident.channel_id is None:
            if await self._channel_pending(incident):
                raise NotYet(f"{incident.key}'s channel is not open yet")
            incident = await self._incident(row)  # it may have opened meanwhile
        where = f"<#{incident.channel_id}>" if incident.channel_id else "(no channel)"
        if row.payload.get("event") == "resolved":
            text = f"✅ {incident.key} resolved: {incident.title} ({where})"
        else:
            text = (
                f"🚨 {incident.key} {incident.severity} declared: {incident.title}. Join {where}."
            )
        return await self._post(row, channel, Message(text), marker)

    async def _diagnose(
        self, row: OutboxRow, incident: Incident, channel: str, marker: str
    ) -> dict[str, Any]:
        """The matched runbooks' read-only diagnostics, run when the channel opens.

        Every result's graded headline goes in one message (Slack allows about one post per
        second per channel: four headlines one by one would take four seconds), and each
        result's rows in that message's thread. The results are recorded before they are
        posted; a retry posts the stored texts instead of running the diagnostics again.
        """
        if self.runbooks is None:
            return {"skipped": "no runbooks"}
        if "texts" not in row.payload:
            results = await self.runbooks.auto_diagnose(incident.key)
            page = self._page(incident)
            texts = {
                str(r.run_id): [runbook_text.headline(r), runbook_text.table(r, page_url=page)]
                for r in results
                if r.run_id is not None
            }
            async with self.db.transaction() as session:
                stored = await session.get(OutboxRow, row.id)
                if stored is not None:
                    stored.payload = {**stored.payload, "texts": texts}
                    session.add(stored)
            row.payload = {**row.payload, "texts": texts}
        texts = row.payload["texts"]
        if not texts:
            return {"skipped": "no matched runbook with configured targets"}
        heads = "\n\n".join(head for head, _ in texts.values())
        summary = f"*Automatic diagnostics* ({len(texts)}, rows in the thread)\n\n{heads}"
        posted = await self._post(row, channel, Message(summary), f"{marker}-results")
        for run_id, (_, table) in texts.items():
            if table:
                await self._post(
                    row,
                    channel,
                    Message(table),
                    f"{marker}-{run_id}-rows",
                    thread_ts=posted["ts"],
                )
        return {"ts": posted["ts"], "runs": list(texts)}

    async def _alert_summary(
        self, row: OutboxRow, incident: Incident, channel: str, marker: str
    ) -> dict[str, Any]:
        since = datetime.fromisoformat(row.payload["since"])
        async with self.db.transaction(read_only=True) as session:
            query = select(Alert).where(
                col(Alert.incident_id) == incident.id,
                col(Alert.status) == "resolved",
                col(Alert.last_seen) >= since - timedelta(minutes=1),
            )
            resolved = list((await session.exec(query)).all())
        if not resolved:
            return {"skipped": "nothing resolved"}
        names = ", ".join(sorted({a.labels.get("alertname") or a.summary for a in resolved}))
        text = f"✅ {len(resolved)} alert(s) resolved: {names}"
        return await self._post(row, channel, Message(text), marker, thread_ts=incident.card_ts)

    async def _channel_pending(self, incident: Incident) -> bool:
        async with self.db.transaction(read_only=True) as session:
            query = select(col(OutboxRow.id)).where(
                col(OutboxRow.incident_id) == incident.id,
                col(OutboxRow.kind) == "open_channel",
                col(OutboxRow.status) == "pending",
            )
            return (await session.exec(query)).first() is not None

    async def _incident(self, row: OutboxRow) -> Incident:
        if row.incident_id is None:
            raise Rejected("outbox row without an incident")
        async with self.db.transaction(read_only=True) as session:
            found = (
                await session.exec(select(Incident).where(col(Incident.id) == row.incident_id))
            ).first()
        if found is None:
            raise Rejected(f"incident #{row.incident_id} is gone")
        return found

    async def _card_view(self, incident: Incident) -> CardView:
        async with self.db.transaction(read_only=True) as session:
            card = await load_card(
                session,
                incident,
                self.incidents.scheme,
                page_url=self._page(incident),
                now=self.clock.now(),
            )
            if self.runbooks is not None:  # the mitigations the latest results suggest
                card = replace(card, next_steps=await next_steps(session, incident, self.runbooks))
            card = replace(card, status_page_ready=self.status_page_ready)
            return replace(card, resolve_ready=await quiet.resolve_ready(session, incident))

    def _page(self, incident: Incident) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/incidents/{incident.key}"

    def _broadcast(self) -> str:
        if not self.broadcast:
            raise Rejected("no broadcast channel configured")
        return self.broadcast


def topic(incident: Incident) -> str:
    commander = incident.roles.get("commander")
    who = f"<@{commander}>" if commander and commander[:1] in "UW" else (commander or "none")
    return (f"{incident.key} · {incident.severity} · {incident.status} · commander: {who}")[:250]


def card_line(card: CardView) -> str:
    return f"{card.key} [{card.severity}] {card.status}: {card.title}"[:3000]


def _bookmarks(links: dict[str, str], page: str | None) -> list[tuple[str, str]]:
    names = {
        "runbook": "Runbook",
        "dashboard": "Dashboard",
        "generator": "Alert source",
        "pagerduty": "PagerDuty",
    }
    found = [(title, links[name]) for name, title in names.items() if name in links]
    if page:
        found.append(("Incident page", page))
    return [(t, u) for t, u in found if u.startswith(("https://", "http://"))]


def _report(task: asyncio.Task[None]) -> None:
    """Log a delivery task's error; its row's lease runs out and it is tried again."""
    if task.cancelled():
        return
    error = task.exception()
    if isinstance(error, StorageUnavailable):
        log.warning("delivery paused, database unavailable: %s", error)
    elif error is not None:
        log.error("delivery failed", exc_info=error)


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60.0, 2.0 ** (attempts - 1)))


def _id(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id
