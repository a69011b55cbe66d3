"""Paging out through Opsgenie's Alert API: the adapter, then the whole flow.

The Opsgenie here is the strict stand-in of ``tests/fakes/opsgenie.py`` (checked against
Opsgenie's own description in ``test_opsgenie_standin.py``), on loopback; the adapter talks to
it over real HTTP. The store, the outbox and the worker are the real ones, on SQLite and on
Postgres, and the worker's pager is the one the server composes (``configured_pager``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.config.sections import OpsgenieTarget
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import paging
from bot.delivery.transcript import transcript_of
from bot.delivery.worker import DeliveryWorker
from bot.incidents.severity import PRESETS
from bot.ports.paging import PageAlert, PageRefused, PageThrottled, PageUnavailable
from bot.store.models import OutboxRow
from integrations.opsgenie import OpsgeniePager
from integrations.paging import configured_pager
from tests.fakes.opsgenie import FakeOpsgenie, create_problems

OPS_KEY = "0b7d5c1e-ops-key"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
PAGE_KINDS = (paging.TRIGGER, paging.ACKNOWLEDGE, paging.RESOLVE)


@pytest.fixture
def og() -> Iterator[FakeOpsgenie]:
    with FakeOpsgenie({OPS_KEY}) as fake:
        yield fake


# -- the adapter ------------------------------------------------------------------------------


def alert(rank: int = 0, severity: str = "P1", summary: str | None = None) -> PageAlert:
    return PageAlert(
        summary=summary or f"INC-0001 [{severity}] Checkout is failing",
        source="checkout",
        severity=severity,
        rank=rank,
        at=NOW,
        component="checkout",
        link="https://warroom.example/incidents/INC-0001",
        details={"incident": "INC-0001", "link": "https://warroom.example/incidents/INC-0001"},
    )


def adapter(
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    key: str = OPS_KEY,
    team: str | None = "sre",
    priorities: dict[str, str] | None = None,
) -> OpsgeniePager:
    monkeypatch.setenv("T_OG", key)
    target = OpsgenieTarget.model_validate(
        {"api_key_env": "T_OG", "url": url, "team": team, "priorities": priorities or {}}
    )
    return OpsgeniePager({"ops": target}, scheme=PRESETS["p1-p4"])


async def test_create_ack_and_close_by_alias_with_the_incident_as_alias(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    pager = adapter(og.url, monkeypatch)
    receipt = await pager.trigger("ops", "INC-0001", alert())
    assert receipt.dedup_key == "INC-0001"
    assert receipt.message.startswith("Request will be processed (request ")
    await pager.acknowledge("ops", "INC-0001")
    await pager.resolve("ops", "INC-0001")
    assert og.history("INC-0001") == [["open", "acked", "closed"]]
    assert og.keys_used == [OPS_KEY] * 3
    (created,) = og.by_alias("INC-0001")
    assert create_problems(created.body) == {}
    assert created.body["message"] == "INC-0001 [P1] Checkout is failing"
    assert created.body["priority"] == "P1"
    assert created.body["responders"] == [{"type": "team", "name": "sre"}]
    assert created.body["entity"] == "checkout"
    assert created.body["details"]["link"] == "https://warroom.example/incidents/INC-0001"
    assert "link: https://warroom.example/incidents/INC-0001" in created.body["description"]
    assert created.notes == ["Acknowledged in warroom (INC-0001)", "Resolved in warroom (INC-0001)"]


async def test_one_alias_per_incident_however_often_it_is_triggered(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    pager = adapter(og.url, monkeypatch, team=None)
    for _ in range(3):
        await pager.trigger("ops", "INC-0003", alert())
    await pager.trigger("ops", "INC-0004", alert())
    (first,) = og.by_alias("INC-0003")
    assert first.count == 3
    assert "responders" not in first.body  # no team: the integration's own routing decides
    assert len(og.alerts) == 2


async def test_a_long_title_is_cut_to_opsgenies_130_characters(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    pager = adapter(og.url, monkeypatch)
    await pager.trigger("ops", "INC-0005", alert(summary="INC-0005 [P1] " + "x" * 300))
    (created,) = og.by_alias("INC-0005")
    assert len(created.body["message"]) == 130
    assert created.body["description"].startswith("INC-0005 [P1] " + "x" * 300)


@pytest.mark.parametrize(
    ("rank", "priority"), [(0, "P1"), (1, "P2"), (2, "P3"), (3, "P4"), (4, "P5"), (9, "P5")]
)
async def test_rank_maps_onto_opsgenies_five_priorities(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch, rank: int, priority: str
) -> None:
    pager = adapter(og.url, monkeypatch)
    await pager.trigger("ops", "INC-0002", PageAlert("s", "src", "SEV", rank, NOW))
    assert og.alerts[-1].body["priority"] == priority


async def test_a_targets_priority_map_wins_over_the_rank(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys are severities as the scheme knows them: a name or a label.
    pager = adapter(og.url, monkeypatch, priorities={"p1": "P2", "low": "P5"})
    await pager.trigger("ops", "INC-0001", alert(0, "P1"))
    await pager.trigger("ops", "INC-0002", alert(3, "P4"))
    await pager.trigger("ops", "INC-0003", alert(1, "P2"))
    assert [a.body["priority"] for a in og.alerts] == ["P2", "P5", "P2"]


async def test_opsgenies_refusals_are_refused_with_its_message(
    og: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown_key = adapter(og.url, monkeypatch, key="not-a-key")
    with pytest.raises(PageRefused, match="ops: HTTP 401: Could not authenticate"):
        await unknown_key.trigger("ops", "INC-0001", alert())
    pager = adapter(og.url, monkeypatch)
    with pytest.raises(PageRefused, match="HTTP 404: Alert does not exist"):
        await pager.acknowledge("ops", "INC-0404")
    with pytest.raises(PageRefused, match="no opsgenie target 'nope'"):
        await pager.resolve("nope", "INC-0001")
    for code in (400, 403, 422):
        og.refusals = [code]
        with pytest.raises(PageRefused, match=f"HTTP {code}: "):
            await pager.trigger("ops", "INC-0001", alert())
    assert og.alerts == []


def scripted(monkeypatch: pytest.MonkeyPatch, answer: httpx.Response | Exception) -> OpsgeniePager:
    def reply(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    pager = adapter("http://opsgenie.test", monkeypatch)
    pager.transport = httpx.MockTransport(reply)
    return pager


async def test_throttling_failures_and_lost_connections_map_onto_the_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = {"message": "slow down", "took": 0.0, "requestId": "r1"}
    with pytest.raises(PageThrottled) as throttled:
        await scripted(
            monkeypatch, httpx.Response(429, headers={"Retry-After": "12"}, json=error)
        ).resolve("ops", "INC-0001")
    assert throttled.value.retry_after == 12.0
    with pytest.raises(PageThrottled) as unsaid:
        await scripted(monkeypatch, httpx.Response(429, json=error)).resolve("ops", "INC-0001")
    assert unsaid.value.retry_after == 10.0
    with pytest.raises(PageUnavailable, match="HTTP 503: down") as failing:
        await scripted(
            monkeypatch, httpx.Response(503, json={**error, "message": "down"})
        ).acknowledge("ops", "INC-0001")
    assert failing.value.uncertain
    with pytest.raises(PageUnavailable) as unreachable:
        await scripted(monkeypatch, httpx.ConnectError("refused")).acknowledge("ops", "INC-0001")
    assert not unreachable.value.uncertain
    with pytest.raises(PageUnavailable) as lost:
        await scripted(monkeypatch, httpx.ReadTimeout("no answer")).trigger(
            "ops", "INC-0001", alert()
        )
    assert lost.value.uncertain
    errors = {**error, "message": "Request body is not processable. Please check the errors."}
    answer = httpx.Response(
        422, json={**errors, "errors": {"message": "Message can not be empty."}}
    )
    with pytest.raises(PageRefused, match=r"HTTP 422: Request body .*message: Message can not be"):
        await scripted(monkeypatch, answer).trigger("ops", "INC-0001", alert())


# -- the flow ---------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_OG_OPS", OPS_KEY)


def opsgenie_yaml(url: str) -> str:
    return (
        "server: {public_url: 'https://warroom.example'}\n"
        "paging:\n"
        "  opsgenie:\n"
        f"    ops: {{api_key_env: T_OG_OPS, url: '{url}', team: sre}}\n"
        "  rules:\n"
        "    - {severities: [P1, P2], target: ops}\n"
    )


@pytest.fixture
async def make_core(env: None) -> AsyncIterator[list[Core]]:
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
    return core.delivery(pager=configured_pager(core.settings))


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


async def test_under_30_percent_429_and_500_each_incident_is_one_alert_opened_acked_closed(
    make_core: list[Core], clock: FixedClock, tmp_path: Path
) -> None:
    with FakeOpsgenie({OPS_KEY}, fault_rate=0.3, seed=11) as og:
        core = build(make_core, clock, tmp_path, opsgenie_yaml(og.url))
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

        assert og.faults.get(429), og.faults  # faults were injected
        assert og.faults.get(500), og.faults
        assert {a.alias for a in og.alerts} == set(keys)
        for key in keys:
            assert og.history(key) == [["open", "acked", "closed"]], key
            timeline = await kinds_of(core, key)
            for kind in (paging.PAGED, paging.PAGE_ACKNOWLEDGED, paging.PAGE_RESOLVED):
                assert timeline.count(kind) == 1, (key, kind)
            assert paging.PAGE_FAILED not in timeline
        assert og.refused == []
        assert {r.status for r in await page_rows(core)} == {"done"}


async def test_a_400_is_not_retried_and_is_told_on_the_timeline_and_in_the_channel(
    make_core: list[Core], clock: FixedClock, tmp_path: Path, og: FakeOpsgenie
) -> None:
    core = build(make_core, clock, tmp_path, opsgenie_yaml(og.url))
    work = worker(core)
    og.refusals = [400]
    made = await core.incidents.declare(
        title="db down", actor="alertmanager", severity="P1", acknowledge=False
    )
    await work.drain()
    for _ in range(3):
        clock.advance(timedelta(minutes=2))
        await work.drain()
    assert og.requests == 1
    (row,) = await page_rows(core)
    assert (row.status, row.attempts) == ("failed", 1)
    (failed,) = [e for e in await core.incidents.timeline(made.key) if e.kind == paging.PAGE_FAILED]
    assert "Could not page `ops` (Opsgenie): refused: ops: HTTP 400: Invalid JSON body" in (
        failed.text
    )
    said = [t.text for t in await transcript_of(core.db, made.id or 0)]
    assert any("Could not page `ops` (Opsgenie)" in t for t in said)
    # Acknowledging then sends nothing to the target that was never paged.
    await core.incidents.acknowledge(made.key, actor="U0ALICE")
    await work.drain()
    assert og.requests == 1
    assert og.alerts == []


async def test_a_paged_incident_says_so_with_opsgenies_answer(
    make_core: list[Core], clock: FixedClock, tmp_path: Path, og: FakeOpsgenie
) -> None:
    core = build(make_core, clock, tmp_path, opsgenie_yaml(og.url))
    work = worker(core)
    made = await core.incidents.declare(
        title="pool exhausted", actor="alertmanager", severity="P2", acknowledge=False
    )
    await deliver_all(core, work, clock)
    (paged,) = [e for e in await core.incidents.timeline(made.key) if e.kind == paging.PAGED]
    assert paged.text.startswith(f"📟 Paged `ops` (Opsgenie) for {made.key}, declared (P2): ")
    assert "Request will be processed" in paged.text
    assert f"(dedup key `{made.key}`)" in paged.text
    (created,) = og.by_alias(made.key)
    assert created.body["priority"] == "P2"
    assert created.body["details"]["link"] == f"https://warroom.example/incidents/{made.key}"
    # Reopened: the closed alert stays closed, a new one opens under the same alias.
    await core.incidents.resolve(made.key, actor="U0ALICE")
    await core.incidents.reopen(made.key, actor="alertmanager", reason="fired again")
    await deliver_all(core, work, clock)
    assert og.history(made.key) == [["open", "closed"], ["open"]]
