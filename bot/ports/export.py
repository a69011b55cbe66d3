"""The export port: what the core asks of where the organisation keeps its reviews
(Confluence pages, a Markdown file in a GitHub repository).

One document per incident and target: :meth:`Exporter.export` creates it the first time and
updates the same document after (``existing`` is what the last export made, if any), so a
re-export never makes a second page. Errors are those of :mod:`bot.ports.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ExportDocument:
    """The post-mortem draft in the forms adapters need: Markdown and HTML (an adapter converts
    the HTML to its own format, e.g. Confluence's storage format)."""

    key: str
    title: str
    markdown: str
    html: str


@dataclass(frozen=True, slots=True)
class ExportRef:
    """The document as exported: the vendor's id, where people read it, its version."""

    id: str
    url: str | None
    version: str = ""


class Exporter(Protocol):
    async def export(
        self, target: str, document: ExportDocument, existing: ExportRef | None
    ) -> ExportRef:
        """Create the document on ``target`` (a configured name), or update ``existing``."""
        ...

    async def find(self, target: str, document: ExportDocument) -> ExportRef | None:
        """The document already exported for ``document.key`` (by the title or path the
        target derives from it), if any: what a lost answer made."""
        ...
