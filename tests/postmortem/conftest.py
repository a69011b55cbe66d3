"""A core on each database, with the fixed clock, local transcript and a broadcast channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.clock import FixedClock
from bot.config.settings import load_settings
from bot.core import Core
from bot.templating import Templates

ZONE = "Europe/Paris"


@pytest.fixture
async def core(
    database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Core]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("WARROOM_SLACK__BROADCAST_CHANNEL", "#incidents")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    built = Core.build(load_settings(), clock=clock)
    yield built
    await built.close()


@pytest.fixture
def templates() -> Templates:
    """The shipped templates, with times shown in a zone other than UTC as well."""
    return Templates(timezone=ZONE)
