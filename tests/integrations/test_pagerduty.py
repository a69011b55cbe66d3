"""Paging out through PagerDuty's Events API v2: the adapter, then the whole flow.

The PagerDuty here is the strict stand-in of ``tests/fakes/pagerduty.py`` (checked against
PagerDuty's own description in ``test_pagerduty_standin.py``), on loopback; the adapter talks
to it over real HTTP. The store, the outbox and the worker are the real ones, on SQLite and on
Postgres.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.commands.parse import parse
from bot.commands.run import Dispatcher
from bot.config.sections import PagerDutyTarget
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import paging
from bot.delivery.transcript import transcript_of
from bot.delivery.worker import DeliveryWorker
from bot.errors import ConfigError, UserError
from bot.intake.alerts.alertmanager import parse as parse_alertmanager
from bot.intake.fold import Endpoint
from bot.ports.paging import PageAlert, PageRefused, PageThrottled, PageUnavailable
from bot.store.models import OutboxRow
from integrations.pagerduty import PagerDutyPager, pagerduty_pager
from tests.fakes.pagerduty import FakePagerDuty, event_problems
from tests.intake.alerts.payloads import raw

ONCALL_KEY = "a" * 32
SECONDARY_KEY = "b" * 32
PAGE_KINDS = (paging.TRIGGER, paging.ACKNOWLEDGE, paging.RESOLVE)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty({ONCALL_KEY, SECONDARY_KEY}) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_PD_ONCALL", ONCALL_KEY)
    monkeypatch.setenv("T_PD_SECONDARY", SECONDARY_KEY)


def paging_yaml(url: str, *, rules: str = "    - {severities: [P1, P2], target: oncall}\n") -> str:
    return (
        "server: {public_url: 'https://warroom.example'}\n"
        "paging:\n"
        "  pagerduty:\n"
        f"    oncall: {{routing_key_env: T_PD_ONCALL, url: '{url}'}}\n"
        f"    secondary: {{routing_key_env: T_PD_SECONDARY, url: '{url}'}}\n"
        f"  rules:\n{rules}"
    )


@pytest.fixture
async def make_core(env: None, clock: FixedClock, tmp_path: Path) -> AsyncIterator[list[Core]]:
    made: list[Core] = []
    yield made
    for core in made:
        await core.close()


def build(made: list[Core], clock: FixedClock, tmp_path: Path, text: str) -> Core:
    config = tmp_path / f"warroom-{len(made)}.yaml"
    config.write_text(text)
    core = Core.build(load_settings(config), clock=clock)
    made.append(core)
    return core


def worker(core: Core) -> DeliveryWorker:
    return core.delivery(pager=pagerduty_pager(core.settings))


async def page_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind).in_(PAGE_KINDS))
        return list((await session.exec(query.order_by(col(OutboxRow.id)))).all())


async def deliver_all(core: Core, work: DeliveryWorker, clock: FixedClock) -> None:
    """Drain, moving time on past every backoff, until no page row is pending."""
    for _ in range(300):
        await work.drain()
        if not [r for r in await page_rows(core) if r.status == "pending"]:
            return
        clock.advance(timedelta(seconds=61))
    raise AssertionError("page rows still pending")


async def kinds_of(core: Core, key: str) -> list[str]:
    return [e.kind for e in await core.incidents.timeline(key)]


# -- the adapter ------------------------------------------------------------------------------


def alert() -> PageAlert:
    return PageAlert(
        summary="INC-0001 [P1] Checkout is failing",
        source="checkout",
        severity="P1",
        rank=0,
        at=NOW,
        component="checkout",
        link="https://warroom.example/incidents/INC-0001",
        details={"incident": "INC-0001", "link": "https://warroom.example/incidents/INC-0001"},
    )


def adapter(url: str, monkeypatch: pytest.MonkeyPatch, key: str = ONCALL_KEY) -> PagerDutyPager:
    monkeypatch.setenv("T_PD", key)
    return PagerDutyPager({"oncall": PagerDutyTarget(routing_key_env="T_PD", url=url)})


async def test_trigger_ack_and_resolve_are_valid_events_with_the_incident_as_dedup_key(
    pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    pager = adapter(pd.url, monkeypatch)
    receipt = await pager.trigger("oncall", "INC-0001", alert())
    assert (receipt.dedup_key, receipt.message) == ("INC-0001", "Event processed")
    await pager.acknowledge("oncall", "INC-0001")
    await pager.resolve("oncall", "INC-0001")
    assert pd.actions("INC-0001") == ["trigger", "acknowledge", "resolve"]
    trigger = pd.events[0]
    assert event_problems(trigger) == []
    assert trigger["routing_key"] == ONCALL_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"] == "INC-0001 [P1] Checkout is failing"
    assert trigger["payload"]["source"] == "checkout"
    assert trigger["payload"]["custom_details"]["link"] == (
        "https://warroom.example/incidents/INC-0001"
    )
    assert trigger["links"] == [
        {"href": "https://warroom.example/incidents/INC-0001", "text": "INC-0001 in warroom"}
    ]
    assert set(pd.events[1]) == {"routing_key", "event_action", "dedup_key"}


@pytest.mark.parametrize(
    ("rank", "word"), [(0, "critical"), (1, "error"), (2, "warning"), (3, "info"), (7, "info")]
)
async def test_our_severity_maps_onto_pagerdutys_four(
    pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch, rank: int, word: str
) -> None:
    pager = adapter(pd.url, monkeypatch)
    page = PageAlert("s", "src", "P", rank, NOW)
    await pager.trigger("oncall", "INC-0002", page)
    assert pd.events[-1]["payload"]["severity"] == word


async def test_answers_map_onto_the_port(
    pd: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = adapter(pd.url, monkeypatch, key="f" * 32)  # PagerDuty does not know this key
    with pytest.raises(PageRefused, match="routing_key' is invalid"):
        await refused.trigger("oncall", "INC-0001", alert())
    with pytest.raises(PageRefused, match="no pagerduty target 'nope'"):
        await refused.resolve("nope", "INC-0001")

    def scripted(answer: httpx.Response | Exception) -> PagerDutyPager:
        def reply(request: httpx.Request) -> httpx.Response:
            if isinstance(answer, Exception):
                raise answer
            return answer

        pager = adapter("http://pd.test", monkeypatch)
        pager.transport = httpx.MockTransport(reply)
        return pager

    with pytest.raises(PageThrottled) as throttled:
        await scripted(httpx.Response(429, headers={"Retry-After": "12"})).resolve(
            "oncall", "INC-0001"
        )
    assert throttled.value.retry_after == 12.0
    with pytest.raises(PageUnavailable) as failing:
        await scripted(httpx.Response(503, json={"status": "x", "message": "down"})).acknowledge(
            "oncall", "INC-0001"
        )
    assert failing.value.uncertain
    with pytest.raises(PageUnavailable) as unreachable:
        await scripted(httpx.ConnectError("refused")).acknowledge("oncall", "INC-0001")
    assert not unreachable.value.uncertain
    with pytest.raises(PageRefused, match="HTTP 403"):
        await scripted(httpx.Response(403, text="forbidden")).acknowledge("oncall", "INC-0001")


def test_routing_keys_come_only_from_the_variables_named(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("T_PD_SECONDARY")
    config = tmp_path / "warroom.yaml"
    config.write_text(paging_yaml("https://events.pagerduty.com"))
    with pytest.raises(ConfigError, match="T_PD_SECONDARY is not set"):
        load_settings(config)
    config.write_text(
        paging_yaml("https://events.pagerduty.com", rules="    - {target: manager}\n")
    )
    monkeypatch.setenv("T_PD_SECONDARY", SECONDARY_KEY)
    with pytest.raises(ConfigError, match="no paging target 'manager'"):
        load_settings(config)
    config.write_text(
        paging_yaml(
            "https://events.pagerduty.com", rules="    - {severities: [P9], target: oncall}\n"
        )
    )
    with pytest.raises(ConfigError, match="Unknown severity 'P9'"):
        load_settings(config)
    config.write_text(paging_yaml("https://events.pagerduty.com"))
    settings = load_settings(config)
    assert ONCALL_KEY not in json.dumps(settings.masked())


# -- the flow ---------------------------------------------------------------------------------


async def test_under_30_percent_429_and_500_each_incident_is_triggered_acked_resolved_once(
    make_core: list[Core], clock: FixedClock, tmp_path: Path
) -> None:
    with FakePagerDuty({ONCALL_KEY, SECONDARY_KEY}, fault_rate=0.3, seed=7) as pd:
        core = build(make_core, clock, tmp_path, paging_yaml(pd.url))
        work = worker(core)
        keys = []
        for n in range(6):
            made = await core.incidents.declare(
                title=f"checkout failing {n}",
                actor="alertmanager",
                severity="P1",
                acknowledge=False,
            )
            keys.append(made.key)
        await work.drain()
        for key in keys:
            await core.incidents.acknowledge(key, actor="U0ALICE")
        await work.drain()
        clock.advance(timedelta(seconds=61))
        for key in keys:
            await core.incidents.resolve(key, actor="U0ALICE", summary="fixed")
        await deliver_all(core, work, clock)

        assert pd.faults.get(429), pd.faults  # faults were injected
        assert pd.faults.get(500), pd.faults
        assert {e["dedup_key"] for e in pd.events} == set(keys)
        for key in keys:
            assert pd.actions(key) == ["trigger", "acknowledge", "resolve"], key
            timeline = await kinds_of(core, key)
            for kind in (paging.PAGED, paging.PAGE_ACKNOWLEDGED, paging.PAGE_RESOLVED):
                assert timeline.count(kind) == 1, (key, kind)
            assert paging.PAGE_FAILED not in timeline
        assert {r.status for r in await page_rows(core)} == {"done"}
        assert all(event_problems(e, pd.routing_keys) == [] for e in pd.events)


async def test_an_alertmanager_alert_that_resolves_resolves_the_page(
    make_core: list[Core], clock: FixedClock, tmp_path: Path, pd: FakePagerDuty
) -> None:
    text = paging_yaml(pd.url) + "intake: {when_all_resolved: resolve}\n"
    core = build(make_core, clock, tmp_path, text)
    work = worker(core)
    endpoint = Endpoint("alertmanager", "alertmanager")
    firing = parse_alertmanager(json.loads(raw("alertmanager/firing_capture_am0.27.0.wire.json")))
    (key,) = (await core.intake.receive(endpoint, firing, delivery_key="f1")).incidents
    await deliver_all(core, work, clock)
    assert pd.actions(key) == ["trigger"]
    paged = next(e for e in await core.incidents.timeline(key) if e.kind == paging.PAGED)
    assert "`oncall`" in paged.text
    assert f"`{key}`" in paged.text
    trigger = pd.events[0]
    assert (
        trigger["payload"]["custom_details"]["link"] == f"https://warroom.example/incidents/{key}"
    )
    assert trigger["payload"]["severity"] == "critical"

    clock.advance(timedelta(minutes=3))
    resolved = parse_alertmanager(
        json.loads(raw("alertmanager/resolved_capture_am0.27.0.wire.json"))
    )
    await core.intake.receive(endpoint, resolved, delivery_key="r1")
    assert (await core.incidents.get(key)).status == "resolved"
    await deliver_all(core, work, clock)
    assert pd.actions(key) == ["trigger", "resolve"]
    assert (await kinds_of(core, key)).count(paging.PAGE_RESOLVED) == 1


async def test_a_400_is_not_retried_and_is_told_on_the_timeline_and_in_the_channel(
    make_core: list[Core],
    clock: FixedClock,
    tmp_path: Path,
    pd: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("T_PD_ONCALL", "c" * 32)  # a routing key PagerDuty does not know
    core = build(make_core, clock, tmp_path, paging_yaml(pd.url))
    work = worker(core)
    made = await core.incidents.declare(
        title="db down", actor="alertmanager", severity="P1", acknowledge=False
    )
    await work.drain()
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        await work.drain()
    assert pd.requests == 1
    (row,) = await page_rows(core)
    assert (row.status, row.attempts) == ("failed", 1)
    (failed,) = [e for e in await core.incidents.timeline(made.key) if e.kind == paging.PAGE_FAILED]
    assert "Could not page `oncall` (PagerDuty): refused" in failed.text
    assert "'routing_key' is invalid" in failed.text
    said = [t.text for t in await transcript_of(core.db, made.id or 0)]
    assert any("Could not page `oncall`" in t for t in said)
    # Acknowledging then sends nothing to the target that was never paged.
    await core.incidents.acknowledge(made.key, actor="U0ALICE")
    await work.drain()
    assert pd.requests == 1


async def test_page_by_hand_from_the_command_and_its_refusals(
    make_core: list[Core], clock: FixedClock, tmp_path: Path, pd: FakePagerDuty
) -> None:
    core = build(make_core, clock, tmp_path, paging_yaml(pd.url))
    work = worker(core)
    made = await core.incidents.declare(title="slow search", actor="U0ALICE", severity="P3")
    await work.drain()
    assert pd.events == []  # no rule pages a P3
    dispatcher = Dispatcher(core)
    outcome = await dispatcher.run(
        parse(f"page {made.key} secondary"), actor="U0ALICE", channel=None
    )
    assert outcome.text == f"Paging `secondary` for {made.key}."
    await work.drain()
    assert [(e["routing_key"], e["event_action"]) for e in pd.events] == [
        (SECONDARY_KEY, "trigger")
    ]
    timeline = await kinds_of(core, made.key)
    assert timeline.count(paging.PAGE_REQUESTED) == 1
    assert timeline.count(paging.PAGED) == 1
    with pytest.raises(
        UserError, match="No paging target `nobody`: use one of `oncall`, `secondary`"
    ):
        await dispatcher.run(parse(f"page {made.key} nobody"), actor="U0ALICE", channel=None)
    await core.incidents.resolve(made.key, actor="U0ALICE")
    await work.drain()
    assert pd.actions(made.key) == ["trigger", "resolve"]
    with pytest.raises(UserError, match="is resolved"):
        await dispatcher.run(parse(f"page {made.key} oncall"), actor="U0ALICE", channel=None)


async def test_without_paging_configured_the_command_says_so(
    make_core: list[Core], clock: FixedClock, tmp_path: Path
) -> None:
    core = build(make_core, clock, tmp_path, "server: {port: 8080}\n")
    made = await core.incidents.declare(title="x", actor="U0ALICE")
    with pytest.raises(UserError, match=r"Paging is not configured: add a `paging\.pagerduty`"):
        await Dispatcher(core).run(parse(f"page {made.key} oncall"), actor="U0A", channel=None)
    assert pagerduty_pager(core.settings) is None


def test_the_page_command_parses() -> None:
    from bot.commands.parse import PageCmd, UsageError

    assert parse("page oncall") == PageCmd(None, "oncall")
    assert parse("page INC-7 oncall") == PageCmd("INC-7", "oncall")
    with pytest.raises(UsageError, match="takes one paging target"):
        parse("page")
    with pytest.raises(UsageError, match="takes one paging target"):
        parse("page a b")


async def test_a_reopened_incident_is_paged_again_and_resolved_again(
    make_core: list[Core], clock: FixedClock, tmp_path: Path, pd: FakePagerDuty
) -> None:
    core = build(make_core, clock, tmp_path, paging_yaml(pd.url))
    work = worker(core)
    made = await core.incidents.declare(
        title="pool exhausted", actor="alertmanager", severity="P2", acknowledge=False
    )
    await core.incidents.resolve(made.key, actor="U0ALICE")
    await core.incidents.reopen(made.key, actor="alertmanager", reason="fired again")
    await core.incidents.resolve(made.key, actor="U0ALICE")
    await deliver_all(core, work, clock)
    assert pd.actions(made.key) == ["trigger", "resolve", "trigger", "resolve"]
