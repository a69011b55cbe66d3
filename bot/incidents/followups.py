"""An incident's follow-ups as its card shows them: counted in SQL, the few shown with tickets.

A follow-up filed as a ticket (:mod:`bot.delivery.tickets`) has the ticket's link on
``follow_up.url`` and an :class:`~bot.store.models.ExternalRecord` of kind ``ticket`` naming it,
with the ticket's key (``OPS-12``, ``#3``) in its data; the readback marks the follow-up
``done`` when the ticket is. :func:`card_follow_ups` reads the counts and at most
:data:`MAX_FOLLOW_UPS_SHOWN` of them (open first, newest first), so the card costs the same for
an incident with three follow-ups as for one with three hundred.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.models import ExternalRecord, FollowUp

MAX_FOLLOW_UPS_SHOWN = 5
DONE = "done"
#: The records of filed tickets (``bot.delivery.tickets.KIND``; the core imports the other way).
TICKET_KIND = "ticket"


@dataclass(frozen=True, slots=True)
class FollowUpLine:
    """One follow-up on the card: ``ticket`` is its ticket's key when it is filed."""

    id: int
    text: str
    owner: str | None
    done: bool
    ticket: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class FollowUpTally:
    """How many follow-ups are open and done, and the ones the card lists."""

    open: int = 0
    done: int = 0
    shown: tuple[FollowUpLine, ...] = ()

    @property
    def total(self) -> int:
        return self.open + self.done

    @property
    def more(self) -> int:
        """The follow-ups not listed."""
        return max(0, self.total - len(self.shown))


async def card_follow_ups(
    session: AsyncSession, incident_id: int, *, limit: int = MAX_FOLLOW_UPS_SHOWN
) -> FollowUpTally:
    """The counts and the first ``limit`` follow-ups, open first, newest first: three queries."""
    mine = col(FollowUp.incident_id) == incident_id
    done = col(FollowUp.status) == DONE
    counts = select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((done, 1), else_=0)), 0)
    ).where(mine)
    total, done_n = (await session.exec(counts)).one()
    if not total:
        return FollowUpTally()
    first = (
        select(FollowUp)
        .where(mine)
        .order_by(
            sa.case((done, 1), else_=0), col(FollowUp.created_at).desc(), col(FollowUp.id).desc()
        )
        .limit(limit)
    )
    items = list((await session.exec(first)).all())
    ids = [item.id for item in items if item.id is not None]
    records = (
        await session.exec(
            select(ExternalRecord)
            .where(
                col(ExternalRecord.incident_id) == incident_id,
                col(ExternalRecord.kind) == TICKET_KIND,
                col(ExternalRecord.follow_up_id).in_(ids),
                col(ExternalRecord.external_id) != "",
            )
            .order_by(col(ExternalRecord.id))
        )
    ).all()
    tickets: dict[int, ExternalRecord] = {}
    for record in records:  # the latest filed, unless an earlier one is the follow-up's link
        assert record.follow_up_id is not None
        held = tickets.get(record.follow_up_id)
        if held is None or not _is_link(held, items):
            tickets[record.follow_up_id] = record
    shown = []
    for item in items:
        assert item.id is not None
        filed = tickets.get(item.id)
        key = str(filed.data.get("key") or filed.external_id) if filed else None
        shown.append(
            FollowUpLine(
                id=item.id,
                text=item.text,
                owner=item.owner,
                done=item.status == DONE,
                ticket=key,
                url=item.url or (filed.url if filed else None),
            )
        )
    return FollowUpTally(int(total) - int(done_n), int(done_n), tuple(shown))


def _is_link(record: ExternalRecord, items: list[FollowUp]) -> bool:
    """Whether ``record``'s ticket is the one on its follow-up's ``url``."""
    return any(i.id == record.follow_up_id and i.url and i.url == record.url for i in items)
