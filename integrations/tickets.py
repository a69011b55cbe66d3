"""The ticket port over every configured target: a target's ``kind`` picks its adapter.

Jira Cloud (:mod:`integrations.jira`) and GitHub Issues (:mod:`integrations.github_issues`);
the worker is given this one :class:`~bot.ports.tickets.Tracker`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config.settings import Settings
from bot.ports.errors import Refused
from bot.ports.tickets import TicketDraft, TicketRef, Tracker
from integrations.github_issues import github_tracker
from integrations.jira import jira_tracker


class RoutedTracker:
    """Each call goes to the adapter of its target's kind."""

    def __init__(self, routes: Mapping[str, Tracker]) -> None:
        self.routes = dict(routes)

    def _route(self, target: str) -> Tracker:
        tracker = self.routes.get(target)
        if tracker is None:
            raise Refused(f"no ticket target {target!r} is configured")
        return tracker

    async def file(self, target: str, draft: TicketDraft) -> TicketRef:
        return await self._route(target).file(target, draft)

    async def find(self, target: str, marker: str) -> TicketRef | None:
        return await self._route(target).find(target, marker)

    async def read(self, target: str, ticket: TicketRef) -> TicketRef:
        return await self._route(target).read(target, ticket)


def configured_tracker(settings: Settings) -> RoutedTracker | None:
    """One tracker for every configured target; None when there are none."""
    routes: dict[str, Tracker] = {}
    jira = jira_tracker(settings)
    if jira is not None:
        routes |= dict.fromkeys(jira.targets, jira)
    github = github_tracker(settings)
    if github is not None:
        routes |= dict.fromkeys(github.targets, github)
    return RoutedTracker(routes) if routes else None
