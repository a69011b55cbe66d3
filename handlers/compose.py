"""The vendor adapters composed into the delivery worker: bot/ knows only their ports.

Each integration beyond chat contributes the outbox kinds it delivers, built over its adapter
(from ``integrations/``) and the settings; a process without the adapter's settings contributes
nothing, and the core refuses requests for it with a message that says what to configure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.core import Core
from bot.delivery.exports import ExportDelivery
from bot.delivery.outbox import Deliver
from bot.delivery.statuspage import StatusPageDelivery
from bot.delivery.tickets import TicketDelivery, TicketPolicy
from bot.drafts import postmortem_markdown
from bot.ports.export import ExportDocument
from integrations.export import exporter
from integrations.statuspage import statuspage_adapter
from integrations.tickets import configured_tracker


def export_renderer(core: Core) -> Callable[[str, str], Awaitable[ExportDocument]]:
    """The current post-mortem draft of an incident, as the export adapters take it."""

    async def render(key: str, title: str) -> ExportDocument:
        from markdown_it import MarkdownIt

        markdown = await postmortem_markdown(core, key)
        html = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
        return ExportDocument(key=key, title=title, markdown=markdown, html=html)

    return render


def outside_kinds(core: Core) -> dict[str, Deliver]:
    """Outbox kinds of the status page, ticket and export integrations, by kind."""
    kinds: dict[str, Deliver] = {}
    kinds |= ExportDelivery(
        core.db, core.incidents, core.settings, exporter(core.settings), export_renderer(core)
    ).kinds()
    if (statuspage := statuspage_adapter(core.settings)) is not None:
        kinds |= StatusPageDelivery(core.db, core.incidents, statuspage, clock=core.clock).kinds()
    if (tracker := configured_tracker(core.settings)) is not None:
        policy = TicketPolicy.from_settings(core.settings)
        kinds |= TicketDelivery(core.db, core.incidents, tracker, policy).kinds()
    return kinds
