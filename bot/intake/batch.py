"""The intake batcher: the deliveries that arrive together are folded in one transaction.

Each webhook request hands its parsed delivery to the process's one :class:`Batcher` and
waits. The batcher takes whatever is queued (up to ``max_deliveries`` deliveries or
``max_alerts`` alerts), folds them with :meth:`bot.intake.fold.Intake.receive_many`, commits
once and answers every request of the batch: a request is answered only after the commit
that stored its delivery. While a batch is being written the next one queues, so batches
grow with the load and a lone request waits for nobody.

A request waits at most ``timeout`` from the moment it is queued: a batch is rolled back
when the earliest deadline among its requests passes (all of them are then answered
:class:`TimeoutError`, 503), so a refused request was never stored, as without the batcher.

A batch that fails for a reason other than the database being away is folded again one
delivery at a time, each in its own transaction: one bad delivery fails only its own
request. The database being away fails the whole batch with
:class:`~bot.errors.StorageUnavailable` (the senders are answered 503 and retry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.errors import StorageUnavailable
from bot.intake.alerts.model import Delivery
from bot.intake.fold import Endpoint, IntakeResult

log = logging.getLogger(__name__)

MAX_DELIVERIES = 64
#: A batch's alerts, bounding how long its statements' parameters keep the event loop.
MAX_ALERTS = 400


class Sink(Protocol):
    """What a batch is written to: :class:`bot.intake.fold.Intake` (folded at once) or
    :class:`bot.intake.journal.Journal` (appended, folded behind)."""

    async def receive_many(
        self, deliveries: Sequence[tuple[Endpoint, Delivery, str]]
    ) -> list[IntakeResult]: ...

    async def receive(
        self, endpoint: Endpoint, delivery: Delivery, *, delivery_key: str
    ) -> IntakeResult: ...


@dataclass(slots=True)
class _Waiting:
    endpoint: Endpoint
    delivery: Delivery
    key: str
    answer: asyncio.Future[IntakeResult]
    deadline: float  # the loop's clock


class Batcher:
    """A :class:`~handlers.webhooks.Receiver` that folds concurrent deliveries together."""

    #: The batcher keeps each request's deadline itself (a caller needs no timeout of its own,
    #: which would abandon a batch that may still commit): a request is failed with
    #: ``TimeoutError`` once its deadline passes before its batch, a batch's write is bounded
    #: by its first deadline, and should the batcher's task end, every request still waiting
    #: is failed with :class:`StorageUnavailable`.
    keeps_deadline = True

    def __init__(
        self,
        intake: Sink,
        *,
        max_deliveries: int = MAX_DELIVERIES,
        max_alerts: int = MAX_ALERTS,
        timeout: float = 8.0,
    ) -> None:
        self.intake = intake
        self.timeout = timeout
        self.max_deliveries = max_deliveries
        self.max_alerts = max_alerts
        self.batches = 0  # how many transactions, for tests and metrics
        self._queue: deque[_Waiting] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: list[_Waiting] = []  # the batch being folded
        self._last = 0.0  # time.monotonic() of the latest request

    async def receive(
        self, endpoint: Endpoint, delivery: Delivery, *, delivery_key: str
    ) -> IntakeResult:
        """Queue ``delivery``; return once the batch holding it is committed."""
        loop = asyncio.get_running_loop()
        wake = self._running(loop)
        answer: asyncio.Future[IntakeResult] = loop.create_future()
        deadline = loop.time() + self.timeout
        self._last = time.monotonic()
        self._queue.append(_Waiting(endpoint, delivery, delivery_key, answer, deadline))
        wake.set()
        # A request that gives up (its timeout) cancels only its wait: the batch goes on.
        return await answer

    def busy(self) -> bool:
        """Whether requests are waiting on a batch (queued, or in the one being folded)."""
        return bool(self._queue or self._current)

    def recent(self, seconds: float = 0.2) -> bool:
        """Whether a request arrived within ``seconds`` (from any thread: a storm is on)."""
        return time.monotonic() - self._last < seconds

    async def close(self) -> None:
        """Fold what is queued, then stop."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        waiting = [w.answer for w in (*self._current, *self._queue)]
        if waiting:
            await asyncio.wait(waiting, timeout=30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def _running(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._queue = deque(w for w in self._queue if w.answer.get_loop() is loop)
            self._task = loop.create_task(self._run(self._wake), name="intake-batcher")
            self._task.add_done_callback(self._ended)
        assert self._wake is not None
        return self._wake

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The task stopped (closed, cancelled, or a bug): nobody waits for it forever."""
        if not task.cancelled() and task.exception() is not None:
            log.error("the intake batcher stopped", exc_info=task.exception())
        for waiting in (*self._current, *self._queue):
            if waiting.answer.get_loop() is task.get_loop():
                _fail(waiting, StorageUnavailable("the intake batcher stopped"))

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            if not self._queue:
                wake.clear()
                await wake.wait()
            batch = self._current = self._take()
            if batch:
                try:
                    await self._fold(batch)
                except asyncio.CancelledError:
                    for waiting in batch:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(StorageUnavailable("shutting down"))
                    raise
                self.batches += 1
                self._current = []
            await asyncio.sleep(0)  # let the requests that arrived meanwhile be parsed

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        alerts = 0
        while self._queue and len(batch) < self.max_deliveries:
            waiting = self._queue[0]
            if waiting.answer.done():  # its request gave up before the batch was formed
                self._queue.popleft()
                continue
            if waiting.deadline <= asyncio.get_running_loop().time():
                _fail(self._queue.popleft(), TimeoutError())
                continue
            size = len(waiting.delivery.alerts)
            if batch and alerts + size > self.max_alerts:
                break
            batch.append(self._queue.popleft())
            alerts += size
        return batch

    async def _fold(self, batch: list[_Waiting]) -> None:
        deadline = min(w.deadline for w in batch)
        try:
            async with asyncio.timeout_at(deadline):
                results = await self.intake.receive_many(
                    [(w.endpoint, w.delivery, w.key) for w in batch]
                )
        except (StorageUnavailable, TimeoutError) as error:
            for waiting in batch:
                _fail(waiting, type(error)(*error.args))
            return
        except Exception:
            if len(batch) > 1:
                log.warning(
                    "a batch of %d deliveries failed: folding them one by one",
                    len(batch),
                    exc_info=True,
                )
            await self._one_by_one(batch)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    async def _one_by_one(self, batch: list[_Waiting]) -> None:
        for waiting in batch:
            try:
                async with asyncio.timeout_at(waiting.deadline):
                    result = await self.intake.receive(
                        waiting.endpoint, waiting.delivery, delivery_key=waiting.key
                    )
            except Exception as error:  # it is that request's answer
                _fail(waiting, error)
            else:
                if not waiting.answer.done():
                    waiting.answer.set_result(result)


def _fail(waiting: _Waiting, error: BaseException) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(error)
