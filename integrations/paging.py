"""The paging port over every configured vendor: a target's name picks its adapter.

Target names are unique across ``paging.pagerduty`` and ``paging.opsgenie`` (the settings check
it), so a rule's or a step's ``target`` names exactly one adapter: PagerDuty's
(:mod:`integrations.pagerduty`) or Opsgenie's (:mod:`integrations.opsgenie`). The worker is given
this one :class:`~bot.ports.paging.Pager`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config.settings import Settings
from bot.ports.paging import PageAlert, Pager, PageReceipt, PageRefused
from integrations.opsgenie import opsgenie_pager
from integrations.pagerduty import pagerduty_pager


class RoutedPager:
    """Each call goes to the adapter that owns its target."""

    def __init__(self, routes: Mapping[str, Pager]) -> None:
        self.routes = dict(routes)

    def _route(self, target: str) -> Pager:
        pager = self.routes.get(target)
        if pager is None:
            raise PageRefused(f"no paging target {target!r} is configured")
        return pager

    async def trigger(self, target: str, dedup_key: str, alert: PageAlert) -> PageReceipt:
        return await self._route(target).trigger(target, dedup_key, alert)

    async def acknowledge(self, target: str, dedup_key: str) -> PageReceipt:
        return await self._route(target).acknowledge(target, dedup_key)

    async def resolve(self, target: str, dedup_key: str) -> PageReceipt:
        return await self._route(target).resolve(target, dedup_key)


def configured_pager(settings: Settings) -> RoutedPager | None:
    """One pager for every configured target; None when there are none."""
    routes: dict[str, Pager] = {}
    pagerduty = pagerduty_pager(settings)
    if pagerduty is not None:
        routes |= dict.fromkeys(pagerduty.targets, pagerduty)
    opsgenie = opsgenie_pager(settings)
    if opsgenie is not None:
        routes |= dict.fromkeys(opsgenie.targets, opsgenie)
    return RoutedPager(routes) if routes else None
