"""The export port over every ``export.targets`` entry, each to its vendor's adapter."""

from __future__ import annotations

import httpx

from bot.config.export import ConfluenceTarget, GitHubTarget
from bot.config.settings import Settings
from bot.ports.errors import Refused
from bot.ports.export import ExportDocument, Exporter, ExportRef
from integrations.confluence import ConfluenceExporter
from integrations.github_export import GitHubExporter


class Exporters:
    """Routes each call to the adapter of the target's ``kind``."""

    def __init__(
        self, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        targets = settings.export.targets
        confluence = {n: t for n, t in targets.items() if isinstance(t, ConfluenceTarget)}
        github = {n: t for n, t in targets.items() if isinstance(t, GitHubTarget)}
        self.confluence = ConfluenceExporter(confluence, transport=transport)
        self.github = GitHubExporter(github, transport=transport)

    def _port(self, target: str) -> Exporter:
        if target in self.confluence.targets:
            return self.confluence
        if target in self.github.targets:
            return self.github
        raise Refused(f"no export target {target!r} is configured")

    async def export(
        self, target: str, document: ExportDocument, existing: ExportRef | None
    ) -> ExportRef:
        return await self._port(target).export(target, document, existing)

    async def find(self, target: str, document: ExportDocument) -> ExportRef | None:
        return await self._port(target).find(target, document)


def exporter(settings: Settings) -> Exporters | None:
    """The adapter for the configured targets; None when there are none."""
    return Exporters(settings) if settings.export.targets else None
