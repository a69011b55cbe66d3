"""The folder: the intake journal's entries turned into incidents, in arrival order.

One per process. Each round takes the oldest entries (up to ``deliveries`` rows, about
``alerts`` alerts) and folds them with :meth:`bot.intake.fold.Intake.fold_in` in ONE
transaction. On Postgres the round also takes a transaction-scoped advisory lock and
deletes its entries in that transaction: replicas fold one after the other, entries are
folded in id order (a sender's resolve never before the firing it sent first) and a crash
rolls the whole round back. On SQLite the entries are deleted from the journal file after
the commit (see :mod:`bot.intake.journal`).

The server runs the rounds in a thread of their own (:meth:`Folder.start`), on their own
event loop and database connections: under a storm the web loop is busy with requests, and
every database wait of a fold would queue behind them. Between two rounds the fold gives
way while requests wait on their append (``busy``), so the storm is taken first and folded
right behind it.

The entries this process appended come with their parsed delivery (:meth:`expect`) and
their requests wait on a :class:`Ticket`; the others (another replica's, or left by a crash)
are parsed again from their body. A round that fails is folded again one entry at a time, so
a bad entry fails alone; an entry that failed :data:`~bot.intake.journal.MAX_ATTEMPTS` times
is left in the journal with its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import StorageUnavailable
from bot.intake.alerts.decode import decode_body
from bot.intake.alerts.model import Delivery
from bot.intake.alerts.registry import get_parser
from bot.intake.fold import Endpoint, Intake, IntakeResult
from bot.intake.journal import Entry, Journal

log = logging.getLogger(__name__)

#: pg_advisory_xact_lock key of the fold ("warroomi" as 64 bits).
LOCK_KEY = 0x77_61_72_72_6F_6F_6D_69
#: Deliveries and alerts one round folds at most: a round's own cost (locks, card refreshes)
#: is shared by its deliveries (one-alert deliveries: 546 alerts/s folded at 64 a round,
#: 925 at 200, in process on SQLite), and SQLite's writer is held for one round (at 200
#: a round of new incidents outlasted the delivery worker's 5 s busy timeout).
ROUND_DELIVERIES = 100
ROUND_ALERTS = 500
#: On SQLite a round holds the one writer every other transaction (a slash command's replay
#: key, the delivery worker) waits for: shorter rounds.
SQLITE_ROUND_ALERTS = 100
#: Alerts of parsed deliveries kept in memory for entries not folded yet; past this, the
#: fold parses their bodies again (memory stays bounded behind a long storm).
HOLD_ALERTS = 10_000
#: While requests wait on their append, a round is followed by this much of its own time
#: asleep: a round that opened an incident (a channel to open, people to page) by as much
#: (the fold takes at most about half of the process while a storm comes in), one that only
#: added alerts to open incidents by three times as much (a quarter: answering the senders
#: comes first, and those alerts change no one's next step).
PACE_OPENING = 1.0
PACE = 3.0

_Arrival = tuple[Endpoint, Delivery, str]
Folded = Callable[[Sequence[tuple[Endpoint, Delivery, IntakeResult]]], None]
#: Builds, inside the fold thread, the journal and intake it uses, and what closes them.
Build = Callable[[], Awaitable[tuple[Journal, Intake, Callable[[], Awaitable[None]]]]]


@dataclass(slots=True)
class Ticket:
    """A delivery this process appended: its fold's result arrives on ``folded``."""

    endpoint: Endpoint
    delivery: Delivery | None
    folded: asyncio.Future[IntakeResult]
    appended: int = 0  # the folder's append count when it was committed (0: not yet)


class Folder:
    def __init__(
        self,
        journal: Journal,
        intake: Intake,
        endpoints: Callable[[str, str], Endpoint],
        *,
        on_folded: Folded = lambda results: None,
        busy: Callable[[], bool] = lambda: False,
        poll_s: float = 1.0,
        deliveries: int = ROUND_DELIVERIES,
        alerts: int | None = None,
    ) -> None:
        self.journal = journal
        self.intake = intake
        self.endpoints = endpoints
        self.on_folded = on_folded
        self.busy = busy
        self.poll_s = poll_s
        self.deliveries = deliveries
        if alerts is None:
            alerts = ROUND_ALERTS if journal.shared else SQLITE_ROUND_ALERTS
        self.alerts = alerts
        self.rounds = 0
        self.folded = 0  # deliveries folded by this process
        # The requests' side (the web loop):
        self._tickets: dict[tuple[str, str], Ticket] = {}
        self._held = 0  # alerts of the deliveries the tickets hold
        self._appends = 0
        self._home: asyncio.AbstractEventLoop | None = None
        # The rounds' side (the web loop, or the fold thread's own):
        self._wake: asyncio.Event | None = None
        self._rounds_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: Callable[[], None] | None = None
        self._idle = False  # the rounds wait for a wake-up
        self._opened = False  # the latest round opened an incident
        self._nudged = False  # an entry was appended since the round began

    # -- the requests' side ------------------------------------------------------------

    def expect(self, endpoint: Endpoint, delivery: Delivery, key: str) -> Ticket:
        """Register a delivery about to be appended; its fold resolves the ticket."""
        self._home = asyncio.get_running_loop()
        ident = (endpoint.name, key[:200])
        if ident in self._tickets:  # the same delivery again, before its fold: one ticket
            return self._tickets[ident]
        held = delivery if self._held + len(delivery.alerts) <= HOLD_ALERTS else None
        if held is not None:
            self._held += len(delivery.alerts)
        ticket = self._tickets[ident] = Ticket(endpoint, held, self._home.create_future())
        return ticket

    def forget(self, endpoint: Endpoint, key: str, ticket: Ticket) -> None:
        """Its append failed: nothing of it will be folded (unless another request's was)."""
        ident = (endpoint.name, key[:200])
        if self._tickets.get(ident) is ticket and not ticket.appended:
            self._release(self._tickets.pop(ident))

    def _release(self, ticket: Ticket) -> None:
        if ticket.delivery is not None:
            self._held -= len(ticket.delivery.alerts)
            ticket.delivery = None

    def appended(self, ticket: Ticket) -> None:
        """Its entry is committed: the next round can fold it."""
        self._appends += 1
        ticket.appended = ticket.appended or self._appends
        self.wake()

    def pending(self) -> int:
        """Deliveries this process appended that are not folded yet."""
        return len(self._tickets)

    def wake(self) -> None:
        self._nudged = True  # seen by the rounds before they wait
        loop, wake = self._rounds_loop, self._wake
        if loop is None or wake is None or not self._idle:
            return  # busy rounds look again before they wait: no thread hop per request
        if self._thread is None:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the fold thread has stopped
                loop.call_soon_threadsafe(wake.set)

    # -- running -----------------------------------------------------------------------

    def start(self, build: Build, *, drain_s: float = 10.0) -> None:
        """Run the rounds in a thread with its own event loop, on what ``build`` makes."""
        self._home = asyncio.get_running_loop()
        ready = threading.Event()

        async def main() -> None:
            journal, intake, close = await build()
            self.journal, self.intake = journal, intake
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()

            def stop_soon() -> None:
                loop.call_soon_threadsafe(stop.set)

            self._stop = stop_soon
            ready.set()
            try:
                await self.run(stop)
                with contextlib.suppress(TimeoutError, StorageUnavailable):
                    async with asyncio.timeout(drain_s):  # the rest waits for the next start
                        await self.drain()
            finally:
                await close()

        def target() -> None:
            try:
                asyncio.run(main())
            except Exception:
                log.exception("the intake folder stopped")
            finally:
                ready.set()

        self._thread = threading.Thread(target=target, name="intake-folder", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)

    async def stop(self) -> None:
        """Stop the fold thread once it has folded what it can within its drain time."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._stop()
        await asyncio.to_thread(thread.join, 60)

    async def run(self, stop: asyncio.Event) -> None:
        """Fold until ``stop`` is set; a round that folded nothing waits for a wake-up."""
        self._rounds_loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        while not stop.is_set():
            wake.clear()
            self._idle = self._nudged = False
            started = time.monotonic()
            try:
                folded = await self.fold_round()
            except StorageUnavailable as error:
                log.warning("intake folding paused: %s", error)
                folded = -1
            except Exception:
                log.exception("an intake fold round failed")
                folded = -1
            if folded > 0:
                await asyncio.sleep(self.rest(time.monotonic() - started))
                continue
            self._idle = True
            if self._nudged:  # an entry committed while this round read the journal
                continue
            waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
            _, unfinished = await asyncio.wait(
                waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED
            )
            self._idle = False
            for task in unfinished:
                task.cancel()

    def rest(self, took: float) -> float:
        """How long to sleep after a round that folded something and took ``took`` seconds:
        none unless a storm is on (``busy``: requests come in, theirs first), then
        :data:`PACE_OPENING` or :data:`PACE` times ``took``, as the round opened an incident
        or not."""
        if not self.busy():
            return 0.0
        return took * (PACE_OPENING if self._opened else PACE)

    async def drain(self) -> int:
        """Fold until the journal is empty; how many entries were taken."""
        total = 0
        while (folded := await self.fold_round()) > 0:
            total += folded
        return total

    async def fold_round(self) -> int:
        """One round; how many entries it took (0: nothing to fold, or another replica is)."""
        round_start = self._appends
        shared = self.journal.shared
        good: list[tuple[Entry, _Arrival]] = []
        failed: list[Entry] = []
        try:
            async with self.intake.db.transaction() as session:
                if shared and not await _try_lock(session):
                    return 0
                entries = await self.journal.oldest(
                    session if shared else None, deliveries=self.deliveries, alerts=self.alerts
                )
                if not entries:
                    self._report(self._settle, round_start)
                    return 0
                for entry in entries:
                    arrival = self._arrival(entry)
                    if arrival is None:
                        failed.append(entry)
                    else:
                        good.append((entry, arrival))
                results = await self.intake.fold_in(session, [a for _, a in good])
                if shared:
                    await self.journal.remove(session, [e.id for e, _ in good])
        except StorageUnavailable:
            raise
        except Exception:
            if not good:
                raise
            log.warning(
                "an intake round of %d entries failed: folding them one by one",
                len(good),
                exc_info=True,
            )
            for entry, arrival in good:
                await self._fold_alone(entry, arrival)
        else:
            if not shared:
                await self.journal.remove(None, [e.id for e, _ in good])
            self._opened = any(result.opened for result in results)
            self._done([(e, a, r) for (e, a), r in zip(good, results, strict=True)])
        for entry in failed:
            await self.journal.failed(entry.id, "the body no longer parses")
        self.rounds += 1
        return len(good) + len(failed)

    async def _fold_alone(self, entry: Entry, arrival: _Arrival) -> None:
        shared = self.journal.shared
        try:
            async with self.intake.db.transaction() as session:
                if shared:
                    await session.exec(  # type: ignore[call-overload]
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), params={"key": LOCK_KEY}
                    )
                (result,) = await self.intake.fold_in(session, [arrival])
                if shared:
                    await self.journal.remove(session, [entry.id])
        except StorageUnavailable:
            raise
        except Exception as error:
            log.exception("intake entry %d failed to fold", entry.id)
            await self.journal.failed(entry.id, f"{type(error).__name__}: {error}")
            self._report(self._fail, (entry.endpoint, entry.delivery_key), error)
            return
        if not shared:
            await self.journal.remove(None, [entry.id])
        self._done([(entry, arrival, result)])

    def _arrival(self, entry: Entry) -> _Arrival | None:
        ticket = self._tickets.get((entry.endpoint, entry.delivery_key))
        held = ticket.delivery if ticket is not None else None  # read once: another thread's
        if ticket is not None and held is not None:
            return ticket.endpoint, held, entry.delivery_key
        endpoint = ticket.endpoint if ticket else self.endpoints(entry.endpoint, entry.source)
        try:
            delivery = get_parser(endpoint.source)(decode_body(entry.body))
        except Exception:
            log.exception("intake entry %d no longer parses", entry.id)
            return None
        return endpoint, delivery, entry.delivery_key

    def _done(self, folded: list[tuple[Entry, _Arrival, IntakeResult]]) -> None:
        self.folded += len(folded)
        self._report(self._resolve, folded)

    # -- back on the requests' side ----------------------------------------------------

    def _report(self, fn: Callable[..., None], *args: Any) -> None:
        home = self._home
        if self._thread is None or home is None:
            fn(*args)
            return
        with contextlib.suppress(RuntimeError):  # the web loop has closed
            home.call_soon_threadsafe(fn, *args)

    def _resolve(self, folded: list[tuple[Entry, _Arrival, IntakeResult]]) -> None:
        for entry, _, result in folded:
            ticket = self._tickets.pop((entry.endpoint, entry.delivery_key), None)
            if ticket is None:
                continue
            self._release(ticket)
            if not ticket.folded.done():
                ticket.folded.set_result(result)
        self.on_folded([(arrival[0], arrival[1], result) for _, arrival, result in folded])

    def _fail(self, ident: tuple[str, str], error: BaseException) -> None:
        ticket = self._tickets.pop(ident, None)
        if ticket is not None:
            self._release(ticket)
        if ticket is not None and not ticket.folded.done():
            ticket.folded.set_exception(error)
            ticket.folded.exception()  # retrieved: the request answers 202 regardless

    def _settle(self, round_start: int) -> None:
        """A round found the journal empty: tickets appended before it began and still
        waiting were folded by another replica."""
        for ident, ticket in list(self._tickets.items()):
            if 0 < ticket.appended <= round_start:
                self._release(self._tickets.pop(ident))
                if not ticket.folded.done():
                    ticket.folded.set_result(IntakeResult(queued=True))


async def _try_lock(session: AsyncSession) -> bool:
    locked = await session.exec(  # type: ignore[call-overload]
        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), params={"key": LOCK_KEY}
    )
    return bool(locked.scalar_one())
