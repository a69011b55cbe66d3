"""Helpers for tests that export a post-mortem (also for the lead's scenario tests).

- :func:`export_yaml` — the ``export:`` section for a Confluence stand-in and/or a GitHub one.
- :func:`set_credentials` — the variables those targets read (``T_CONF_EMAIL``, ...).
- :func:`export_worker` — a delivery worker with the export kinds (``handlers.compose``).
- :func:`deliver_exports` — drain until no ``postmortem_export`` row waits, moving the clock.

Reading the exported page back: ``FakeConfluence.only_page()`` (or ``page_titled(title)``)
gives a :class:`tests.fakes.confluence.Page`: ``.body`` the storage value, ``.text()`` what a
reader sees, ``.version``, ``.title``; the GitHub one: ``FakeGitHubContents.file(repo, path)``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.core import Core
from bot.delivery import exports
from bot.delivery.worker import DeliveryWorker
from bot.store.models import ExternalRecord, OutboxRow
from handlers.compose import outside_kinds

EMAIL = "responder@acme.example"
TOKEN = "atlassian-api-token-0001"
GH_TOKEN = "ghp_exportexportexportexportexport01"
REPO = "acme/postmortems"


def set_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_CONF_EMAIL", EMAIL)
    monkeypatch.setenv("T_CONF_TOKEN", TOKEN)
    monkeypatch.setenv("T_GH_TOKEN", GH_TOKEN)


def export_yaml(
    confluence_url: str | None = None,
    github_url: str | None = None,
    *,
    parent_id: str | None = None,
    space: str = "OPS",
) -> str:
    lines = ["export:", "  targets:"]
    if confluence_url:
        parent = f", parent_id: '{parent_id}'" if parent_id else ""
        lines.append(
            f"    wiki: {{kind: confluence, url: '{confluence_url}', space: {space}{parent}, "
            "email_env: T_CONF_EMAIL, token_env: T_CONF_TOKEN}"
        )
    if github_url:
        lines.append(
            f"    repo: {{kind: github, url: '{github_url}', repo: {REPO}, branch: main, "
            "token_env: T_GH_TOKEN}"
        )
    return "\n".join(lines) + "\n"


def export_worker(core: Core) -> DeliveryWorker:
    return core.delivery(kinds=outside_kinds(core))


async def export_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind) == exports.EXPORT)
        return list((await session.exec(query.order_by(col(OutboxRow.id)))).all())


async def deliver_exports(core: Core, work: DeliveryWorker, clock: FixedClock) -> None:
    """Drain, moving time on past every backoff, until no export row is pending."""
    for _ in range(60):
        await work.drain()
        if not [r for r in await export_rows(core) if r.status == "pending"]:
            return
        clock.advance(timedelta(seconds=61))
    raise AssertionError("export rows still pending")


async def records(core: Core) -> list[ExternalRecord]:
    async with core.db.transaction(read_only=True) as session:
        query = select(ExternalRecord).order_by(col(ExternalRecord.id))
        return list((await session.exec(query)).all())
