"""The post-mortem draft of an incident as Markdown: what the CLI, Slack and the pages share."""

from __future__ import annotations

from bot.core import Core
from bot.postmortem import build_postmortem, render_markdown


async def postmortem_markdown(core: Core, key: str) -> str:
    built = await build_postmortem(
        core.db, key, scheme=core.incidents.scheme, incidents=core.incidents, now=core.clock.now()
    )
    return render_markdown(core.templates, built)
