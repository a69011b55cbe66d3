"""The vendor adapters composed into the delivery worker: bot/ knows only their ports.

Each integration beyond chat contributes the outbox kinds it delivers, built over its adapter
(from ``integrations/``) and the settings; a process without the adapter's settings contributes
nothing, and the core refuses requests for it with a message that says what to configure.
"""

from __future__ import annotations

from bot.core import Core
from bot.delivery.outbox import Deliver


def outside_kinds(core: Core) -> dict[str, Deliver]:
    """Outbox kinds of the status page, ticket and export integrations, by kind."""
    kinds: dict[str, Deliver] = {}
    return kinds
