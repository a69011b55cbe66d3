"""Paging two vendors at once: each rule's target is paged on its own vendor.

PagerDuty and Opsgenie are the strict stand-ins on loopback; the worker's pager is the one the
server composes (``integrations.paging.configured_pager``). The configuration: P1 and P2 page
``oncall`` (PagerDuty); the ``payments`` service pages ``payments`` (Opsgenie, team
``payments-sre``); escalation step 1 pages ``platform`` (Opsgenie, another key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.commands.parse import parse
from bot.commands.run import Dispatcher
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import paging
from bot.delivery.worker import DeliveryWorker
from bot.errors import UserError
from integrations.paging import configured_pager
from tests.fakes.opsgenie import FakeOpsgenie
from tests.fakes.pagerduty import FakePagerDuty

PD_KEY = "a" * 32
PAYMENTS_KEY = "og-payments-key"
PLATFORM_KEY = "og-platform-key"


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty({PD_KEY}) as fake:
        yield fake


@pytest.fixture
def og() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie({PAYMENTS_KEY, PLATFORM_KEY}) as fake:
        yield fake


@pytest.fixture
async def core(
    database_url: str,
    clock: FixedClock,
    tmp_path: Path,
    pd: FakePagerDuty,
    og: FakeOpsgenie,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Core]:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_PD_ONCALL", PD_KEY)
    monkeypatch.setenv("T_OG_PAYMENTS", PAYMENTS_KEY)
    monkeypatch.setenv("T_OG_PLATFORM", PLATFORM_KEY)
    path = tmp_path / "warroom.yaml"
    path.write_text(
        "paging:\n"
        "  pagerduty:\n"
        f"    oncall: {{routing_key_env: T_PD_ONCALL, url: '{pd.url}'}}\n"
        "  opsgenie:\n"
        f"    payments: {{api_key_env: T_OG_PAYMENTS, url: '{og.url}', team: payments-sre}}\n"
        f"    platform: {{api_key_env: T_OG_PLATFORM, url: '{og.url}'}}\n"
        "  rules:\n"
        "    - {severities: [P1, P2], target: oncall}\n"
        "    - {service: payments, target: payments}\n"
        "  escalation:\n"
        "    - {page: platform}\n"
    )
    made = Core.build(load_settings(path), clock=clock)
    yield made
    await made.close()


def worker(core: Core) -> DeliveryWorker:
    return core.delivery(pager=configured_pager(core.settings))


def opsgenie_keys(og: FakeOpsgenie) -> list[str]:
    return list(dict.fromkeys(og.keys_used))


async def test_an_incident_matching_an_opsgenie_rule_is_paged_there_and_on_pagerduty(
    core: Core, pd: FakePagerDuty, og: FakeOpsgenie
) -> None:
    work = worker(core)
    made = await core.incidents.declare(
        title="card payments failing",
        actor="alertmanager",
        severity="P1",
        service="payments",
        acknowledge=False,
    )
    await work.drain()
    assert pd.actions(made.key) == ["trigger"]
    (alert,) = og.by_alias(made.key)
    assert alert.body["responders"] == [{"type": "team", "name": "payments-sre"}]
    assert alert.body["priority"] == "P1"
    assert opsgenie_keys(og) == [PAYMENTS_KEY]
    paged = [e.text for e in await core.incidents.timeline(made.key) if e.kind == paging.PAGED]
    assert any(t.startswith("📟 Paged `oncall` (PagerDuty)") for t in paged), paged
    assert any(t.startswith("📟 Paged `payments` (Opsgenie)") for t in paged), paged

    await core.incidents.acknowledge(made.key, actor="U0ALICE")
    await work.drain()
    await core.incidents.resolve(made.key, actor="U0ALICE")
    await work.drain()
    assert pd.actions(made.key) == ["trigger", "acknowledge", "resolve"]
    assert og.history(made.key) == [["open", "acked", "closed"]]
    acked = [
        e.text
        for e in await core.incidents.timeline(made.key)
        if e.kind == paging.PAGE_ACKNOWLEDGED
    ]
    assert f"📟 Opsgenie alert `{made.key}` on `payments` acknowledged" in acked


async def test_an_incident_no_opsgenie_rule_matches_is_not_paged_there(
    core: Core, pd: FakePagerDuty, og: FakeOpsgenie
) -> None:
    made = await core.incidents.declare(
        title="search slow", actor="alertmanager", severity="P2", service="search"
    )
    await worker(core).drain()
    assert pd.actions(made.key) == ["trigger"]
    assert og.requests == 0


async def test_escalation_pages_an_opsgenie_target(
    core: Core, clock: FixedClock, pd: FakePagerDuty, og: FakeOpsgenie
) -> None:
    work = worker(core)
    made = await core.incidents.declare(
        title="checkout down", actor="alertmanager", severity="P1", acknowledge=False
    )
    await work.drain()
    assert og.requests == 0
    clock.advance(timedelta(minutes=15, seconds=1))
    await work.drain()
    await work.drain()
    escalated = [
        e.text for e in await core.incidents.timeline(made.key) if e.kind == paging.ESCALATED
    ]
    assert len(escalated) == 1
    assert "paging `platform` (Opsgenie)" in escalated[0]
    assert og.history(made.key) == [["open"]]
    assert opsgenie_keys(og) == [PLATFORM_KEY]
    # Acknowledged: both vendors' alerts are acknowledged.
    await core.incidents.acknowledge(made.key, actor="U0ALICE")
    await work.drain()
    assert og.history(made.key) == [["open", "acked"]]
    assert pd.actions(made.key) == ["trigger", "acknowledge"]


async def test_paging_an_opsgenie_target_by_hand(core: Core, og: FakeOpsgenie) -> None:
    made = await core.incidents.declare(title="slow search", actor="U0ALICE", severity="P3")
    dispatcher = Dispatcher(core)
    outcome = await dispatcher.run(
        parse(f"page {made.key} platform"), actor="U0ALICE", channel=None
    )
    assert outcome.text == f"Paging `platform` for {made.key}."
    await worker(core).drain()
    (alert,) = og.by_alias(made.key)
    assert alert.body["priority"] == "P3"
    requested = [
        e.text for e in await core.incidents.timeline(made.key) if e.kind == paging.PAGE_REQUESTED
    ]
    assert requested == ["📟 U0ALICE asked to page `platform` (Opsgenie)"]
    with pytest.raises(
        UserError, match="No paging target `nobody`: use one of `oncall`, `payments`, `platform`"
    ):
        await dispatcher.run(parse(f"page {made.key} nobody"), actor="U0ALICE", channel=None)
