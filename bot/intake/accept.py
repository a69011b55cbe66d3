"""The server's receiver: a delivery is journaled first, then answered.

Each request appends its delivery to the intake journal through a
:class:`~bot.intake.batch.Batcher` (many requests, one short transaction) and, while the
folder keeps up (none of this process's deliveries waiting), waits for
its fold and answers with what it did (200, its incidents). In a storm the folder falls
behind: the request is answered as soon as its entry is committed (202 ``queued``) and the
fold follows. Either way nothing is answered 2xx before it is durable.
"""

from __future__ import annotations

import asyncio
import logging

from bot.intake.alerts.model import Delivery
from bot.intake.batch import Batcher
from bot.intake.fold import Endpoint, IntakeResult
from bot.intake.folder import Folder

log = logging.getLogger(__name__)

#: A request waits for its fold when fewer of this process's deliveries wait than this:
#: a lone request (a test, a quiet day) gets its incidents, a storm gets 202 at once.
WAIT_BELOW = 1


class Acceptor:
    """A :class:`~handlers.webhooks.Receiver`: journal, then fold (awaited while it keeps up)."""

    #: The batcher keeps the append's deadline and the fold is awaited ``fold_wait`` at most.
    keeps_deadline = True

    def __init__(
        self,
        appender: Batcher,
        folder: Folder,
        *,
        wait_below: int = WAIT_BELOW,
        fold_wait: float = 2.0,
    ) -> None:
        self.appender = appender
        self.folder = folder
        self.wait_below = wait_below
        self.fold_wait = fold_wait

    async def receive(
        self, endpoint: Endpoint, delivery: Delivery, *, delivery_key: str
    ) -> IntakeResult:
        waits = self.folder.pending() < self.wait_below
        ticket = self.folder.expect(endpoint, delivery, delivery_key)
        try:
            queued = await self.appender.receive(endpoint, delivery, delivery_key=delivery_key)
        except BaseException:
            self.folder.forget(endpoint, delivery_key, ticket)
            raise
        self.folder.appended(ticket)
        if waits:
            try:
                async with asyncio.timeout(self.fold_wait):
                    return await asyncio.shield(ticket.folded)
            except TimeoutError:
                log.debug(
                    "fold of %s slower than %.1fs: answered queued",
                    delivery_key[:16],
                    self.fold_wait,
                )
            except Exception as error:  # it stays in the journal, the folder retries it
                log.warning("fold of %s failed (%s): answered queued", delivery_key[:16], error)
        return queued

    def busy(self) -> bool:
        """Requests wait on an append (the delivery worker gives way to them)."""
        return self.appender.busy()

    async def close(self) -> None:
        await self.appender.close()
