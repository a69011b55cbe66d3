"""The public status page: the adapter against the Statuspage stand-in, then the whole flow.

The Statuspage here is the strict stand-in of ``tests/fakes/statuspage.py`` (held to the
vendored description in ``test_statuspage_standin.py``), on loopback; the adapter talks to it
over real HTTP. The store, the outbox and the worker are the real ones, on SQLite and Postgres.

Helpers for other tests (the lead's scenario): :func:`statuspage_yaml` (a config with one
target), :func:`build` (a core from it), :func:`worker` (a worker with the adapter),
:func:`publish` (preview then confirm, as the Slack buttons do) and :func:`deliver_all`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.commands.parse import StatusPageCmd, UsageError, parse
from bot.commands.run import Dispatcher
from bot.config.settings import StatusPageTarget, load_settings
from bot.core import Core
from bot.delivery import statuspage as sp
from bot.delivery.transcript import transcript_of
from bot.delivery.worker import DeliveryWorker
from bot.drafts import postmortem_markdown
from bot.errors import ConfigError, UserError
from bot.incidents.card import load_card
from bot.incidents.statuspage import Action, StatusPlan
from bot.ports.errors import Refused, Throttled, Unavailable
from bot.ports.statuspage import StatusNotice
from bot.store.models import OutboxRow
from handlers.compose import outside_kinds
from integrations.statuspage import StatuspageAdapter, statuspage_adapter
from tests.fakes.statuspage import FakeStatuspage

API_KEY = "sp-" + "k" * 40
PAGE = "kctbh9vrtdwd"
CHECKOUT = "ftgks51sfs2d"
SEARCH = "8kbf7d35c070"
COMMANDER = "U0COMMAND1"
BYSTANDER = "U0BYSTAND1"


@pytest.fixture
def statuspage() -> Iterator[FakeStatuspage]:
    with FakeStatuspage({API_KEY}, {PAGE: {CHECKOUT: "Checkout", SEARCH: "Search"}}) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_SP_KEY", API_KEY)


def statuspage_yaml(url: str, *, allowed: str = "{roles: [commander]}") -> str:
    return (
        "server: {public_url: 'https://warroom.example'}\n"
        "statuspage:\n"
        "  public:\n"
        f"    url: '{url}'\n"
        f"    page_id: {PAGE}\n"
        "    api_key_env: T_SP_KEY\n"
        f"    components: {{checkout: [{CHECKOUT}], search: {SEARCH}}}\n"
        f"    allowed: {allowed}\n"
    )


@pytest.fixture
async def made(env: None) -> AsyncIterator[list[Core]]:
    cores: list[Core] = []
    yield cores
    for core in cores:
        await core.close()


def build(made: list[Core], clock: FixedClock, tmp_path: Path, text: str) -> Core:
    config = tmp_path / f"warroom-{len(made)}.yaml"
    config.write_text(text)
    core = Core.build(load_settings(config), clock=clock)
    made.append(core)
    return core


def worker(core: Core) -> DeliveryWorker:
    return core.delivery(kinds=outside_kinds(core))


async def publish(
    core: Core, key: str, action: Action | None = None, *, actor: str = COMMANDER
) -> StatusPlan:
    """Preview, then confirm that very preview (what the Slack buttons do)."""
    plan = await core.statuspage.preview(key, action, actor=actor)
    assert await core.statuspage.request(plan.token(), actor=actor)
    return plan


async def status_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind) == sp.PUBLISH)
        return list((await session.exec(query.order_by(col(OutboxRow.id)))).all())


async def deliver_all(core: Core, work: DeliveryWorker, clock: FixedClock) -> None:
    """Drain, moving time past every backoff, until no status page row is pending."""
    for _ in range(300):
        await work.drain()
        if not [r for r in await status_rows(core) if r.status == "pending"]:
            await work.drain()
            return
        clock.advance(timedelta(seconds=61))
    raise AssertionError("status page rows still pending")


async def kinds_of(core: Core, key: str) -> list[str]:
    return [e.kind for e in await core.incidents.timeline(key)]


async def declare(core: Core, title: str = "Checkout is failing", severity: str = "P1") -> str:
    made = await core.incidents.declare(
        title=title, actor=COMMANDER, severity=severity, service="checkout", commander=COMMANDER
    )
    return made.key


# -- the adapter ------------------------------------------------------------------------------


def notice(**changes: object) -> StatusNotice:
    fields: dict[str, object] = {
        "marker": "INC-0001",
        "name": "Checkout is failing",
        "body": "We are investigating failed payments.",
        "phase": "investigating",
        "impact": "critical",
        "components": {CHECKOUT: "major_outage"},
    }
    fields.update(changes)
    return StatusNotice(**fields)  # type: ignore[arg-type]


def adapter(url: str, monkeypatch: pytest.MonkeyPatch, key: str = API_KEY) -> StatuspageAdapter:
    monkeypatch.setenv("T_SP", key)
    target = StatusPageTarget(page_id=PAGE, api_key_env="T_SP", url=url)
    return StatuspageAdapter({"public": target})


async def test_open_update_resolve_and_find_by_marker(
    statuspage: FakeStatuspage, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = adapter(statuspage.url, monkeypatch)
    opened = await page.open("public", notice())
    assert opened.phase == "investigating"
    assert opened.url is not None
    assert opened.url.startswith("http://stspg.io/")
    assert statuspage.component_status(PAGE, CHECKOUT) == "major_outage"
    assert await page.find("public", "INC-0001") == opened.__class__(
        opened.id, opened.url, "investigating", "We are investigating failed payments."
    )
    assert await page.find("public", "INC-0002") is None
    await page.update("public", opened.id, notice(phase="identified", body="Found it."))
    resolved = await page.update(
        "public",
        opened.id,
        notice(phase="resolved", body="Fixed.", components={CHECKOUT: "operational"}),
    )
    assert resolved.phase == "resolved"
    (incident,) = statuspage.of(PAGE, "INC-0001")
    assert [u["body"] for u in incident["incident_updates"]] == [
        "Fixed.",
        "Found it.",
        "We are investigating failed payments.",
    ]
    assert incident["impact"] == "critical"
    assert statuspage.component_status(PAGE, CHECKOUT) == "operational"
    assert await page.find("public", "INC-0001") is None  # resolved: not among the unresolved
    assert statuspage.refused == []


async def test_answers_map_onto_the_port(
    statuspage: FakeStatuspage, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Refused, match="HTTP 401: Could not authenticate"):
        await adapter(statuspage.url, monkeypatch, key="wrong").open("public", notice())
    page = adapter(statuspage.url, monkeypatch)
    with pytest.raises(Refused, match=r"HTTP 422: .*Component nope1 was not found"):
        await page.open("public", notice(components={"nope1": "major_outage"}))
    with pytest.raises(Refused, match="HTTP 404"):
        await page.update("public", "missing00000", notice())
    with pytest.raises(Refused, match="no statuspage target 'other'"):
        await page.open("other", notice())

    def scripted(answer: httpx.Response | Exception) -> StatuspageAdapter:
        def reply(request: httpx.Request) -> httpx.Response:
            assert request.headers["Authorization"] == f"OAuth {API_KEY}"
            if isinstance(answer, Exception):
                raise answer
            return answer

        made = adapter("http://sp.test", monkeypatch)
        made.transport = httpx.MockTransport(reply)
        return made

    for code in (420, 429):
        with pytest.raises(Throttled) as throttled:
            await scripted(httpx.Response(code, headers={"Retry-After": "7"})).open(
                "public", notice()
            )
        assert throttled.value.retry_after == 7.0
    with pytest.raises(Unavailable) as failing:
        await scripted(httpx.Response(503, json={"error": "down"})).open("public", notice())
    assert failing.value.uncertain
    assert "down" in str(failing.value)
    with pytest.raises(Unavailable) as unreachable:
        await scripted(httpx.ConnectError("refused")).open("public", notice())
    assert not unreachable.value.uncertain
    with pytest.raises(Unavailable) as lost:
        await scripted(httpx.ReadTimeout("slow")).open("public", notice())
    assert lost.value.uncertain
    with pytest.raises(Refused, match="HTTP 403: forbidden"):
        await scripted(httpx.Response(403, json={"error": "forbidden"})).open("public", notice())


# -- configuration ----------------------------------------------------------------------------


def test_the_key_comes_only_from_the_variable_and_mistakes_name_the_line(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "warroom.yaml"
    config.write_text(statuspage_yaml("https://api.statuspage.io"))
    settings = load_settings(config)
    assert settings.statuspage["public"].url == "https://api.statuspage.io"
    assert API_KEY not in json.dumps(settings.masked())
    monkeypatch.delenv("T_SP_KEY")
    with pytest.raises(ConfigError, match="T_SP_KEY is not set") as missing:
        load_settings(config)
    assert f"{config}:3" in str(missing.value)
    monkeypatch.setenv("T_SP_KEY", API_KEY)
    config.write_text(statuspage_yaml("https://api.statuspage.io").replace(PAGE, "not a page!"))
    with pytest.raises(ConfigError, match="is not a Statuspage page id") as bad:
        load_settings(config)
    assert "statuspage.public.page_id" in str(bad.value)
    config.write_text(statuspage_yaml("https://api.statuspage.io") + "    api_key: plain\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(config)
    config.write_text(statuspage_yaml("https://api.statuspage.io", allowed="{roles: []}"))
    with pytest.raises(ConfigError, match="allowed names nobody"):
        load_settings(config)


# -- the flow ---------------------------------------------------------------------------------


async def test_open_update_and_resolve_from_the_templates_with_link_on_timeline_and_card(
    made: list[Core], clock: FixedClock, tmp_path: Path, statuspage: FakeStatuspage
) -> None:
    core = build(made, clock, tmp_path, statuspage_yaml(statuspage.url))
    work = worker(core)
    key = await declare(core)
    plan = await core.statuspage.preview(key, actor=COMMANDER)
    assert (plan.action, plan.phase, plan.impact) == ("open", "investigating", "critical")
    assert plan.components == {CHECKOUT: "major_outage"}
    assert plan.body.startswith("INCIDENT: Checkout is failing\nSeverity: P1\n")
    assert await core.statuspage.request(plan.token(), actor=COMMANDER)
    assert not await core.statuspage.request(plan.token(), actor=COMMANDER)  # a double click
    await deliver_all(core, work, clock)
    (incident,) = statuspage.of(PAGE, key)
    assert incident["name"] == "Checkout is failing"
    assert incident["incident_updates"][0]["body"] == plan.body  # exactly what was previewed
    timeline = await core.incidents.timeline(key)
    published = [e for e in timeline if e.kind == sp.PUBLISHED]
    assert len(published) == 1
    assert incident["shortlink"] in published[0].text
    said = [t.text for t in await transcript_of(core.db, published[0].incident_id)]
    assert any(incident["shortlink"] in t for t in said)  # told in the channel

    # Asking to open again posts an update; the update uses the latest status update's words.
    await core.updates.post(key, actor=COMMANDER, status="identified", progress="Rolled back v42")
    again = await core.statuspage.preview(key, "open", actor=COMMANDER)
    assert (again.action, again.became_update, again.phase) == ("update", True, "identified")
    assert "Progress: Rolled back v42" in again.body
    assert await core.statuspage.request(again.token(), actor=COMMANDER)
    await deliver_all(core, work, clock)
    (incident,) = statuspage.of(PAGE, key)
    assert incident["status"] == "identified"

    async with core.db.transaction(read_only=True) as session:
        card = await load_card(session, await core.incidents.get(key), core.incidents.scheme)
    (link,) = card.status_pages
    assert link.url == incident["shortlink"]
    assert link.phase == "identified"

    # Resolving the incident does not publish: it offers.
    await core.incidents.resolve(
        key, actor=COMMANDER, summary="rolled back", root_cause="bad deploy"
    )
    await work.drain()
    (incident,) = statuspage.of(PAGE, key)
    assert incident["status"] == "identified"
    said = [t.text for t in await transcript_of(core.db, (await core.incidents.get(key)).id or 0)]
    assert any("still says identified" in t and "Resolve status page" in t for t in said)
    closing = await publish(core, key)  # no action given: resolving it is what is left
    assert closing.action == "resolve"
    assert closing.body.startswith("INCIDENT RESOLVED:")
    assert closing.components == {CHECKOUT: "operational"}
    await deliver_all(core, work, clock)
    (incident,) = statuspage.of(PAGE, key)
    assert incident["status"] == "resolved"
    assert statuspage.component_status(PAGE, CHECKOUT) == "operational"
    assert (await kinds_of(core, key)).count(sp.PUBLISHED) == 3
    with pytest.raises(UserError, match="No status page incident is open"):
        await core.statuspage.preview(key, "update", actor=COMMANDER)


async def test_under_faults_each_incident_has_exactly_one_status_incident(
    made: list[Core], clock: FixedClock, tmp_path: Path
) -> None:
    pages = {PAGE: {CHECKOUT: "Checkout", SEARCH: "Search"}}
    with FakeStatuspage({API_KEY}, pages, fault_rate=0.4, seed=3) as statuspage:
        core = build(made, clock, tmp_path, statuspage_yaml(statuspage.url))
        work = worker(core)
        keys = [await declare(core, f"checkout failing {n}") for n in range(4)]
        for key in keys:
            await publish(core, key, "open")
        statuspage.lose_next(2)  # two writes go through and their answers are lost
        await deliver_all(core, work, clock)
        for key in keys:
            await publish(core, key, "update")
        await deliver_all(core, work, clock)
        assert statuspage.faults.get(420)
        assert statuspage.faults.get(429)
        assert statuspage.faults.get(500)
        for key in keys:
            (incident,) = statuspage.of(PAGE, key)  # one status incident, never a second
            assert len(incident["incident_updates"]) == 2, key  # the open, the update: once each
            timeline = await kinds_of(core, key)
            assert timeline.count(sp.PUBLISHED) == 2
            assert sp.FAILED not in timeline
        assert {r.status for r in await status_rows(core)} == {"done"}


async def test_only_the_allowed_may_publish_and_others_are_told_who_may(
    made: list[Core], clock: FixedClock, tmp_path: Path, statuspage: FakeStatuspage
) -> None:
    text = statuspage_yaml(statuspage.url, allowed="{roles: [commander], users: [U0COMMS001]}")
    core = build(made, clock, tmp_path, text)
    key = await declare(core)
    with pytest.raises(UserError, match="You may not publish to the status page `public`") as no:
        await core.statuspage.preview(key, actor=BYSTANDER)
    assert "incident roles commander; users <@U0COMMS001>" in str(no.value)
    plan = await core.statuspage.preview(key, actor=COMMANDER)
    with pytest.raises(UserError, match="You may not publish"):  # a forwarded button, too
        await core.statuspage.request(plan.token(), actor=BYSTANDER)
    await publish(core, key, actor="U0COMMS001")
    assert [e.kind for e in await core.incidents.timeline(key)].count(sp.REQUESTED) == 1
    assert len(await status_rows(core)) == 1


async def test_a_changed_incident_or_a_refusal_changes_nothing_and_says_why(
    made: list[Core], clock: FixedClock, tmp_path: Path, statuspage: FakeStatuspage
) -> None:
    core = build(made, clock, tmp_path, statuspage_yaml(statuspage.url))
    work = worker(core)
    key = await declare(core)
    plan = await core.statuspage.preview(key, actor=COMMANDER)
    await core.incidents.set_severity(key, "P2", actor=COMMANDER, reason="smaller")
    with pytest.raises(UserError, match="changed since this preview"):
        await core.statuspage.request(plan.token(), actor=COMMANDER)
    with pytest.raises(UserError, match="cannot be read"):
        await core.statuspage.request("INC-1|public|open", actor=COMMANDER)
    assert await status_rows(core) == []
    # Statuspage refuses (the component is gone from the page): told, not retried.
    del statuspage.components[PAGE][CHECKOUT]
    await publish(core, key)
    for _ in range(3):
        await work.drain()
        clock.advance(timedelta(minutes=2))
    (row,) = await status_rows(core)
    assert (row.status, row.attempts) == ("failed", 1)
    (failed,) = [e for e in await core.incidents.timeline(key) if e.kind == sp.FAILED]
    assert "Could not open the status page `public`" in failed.text
    assert f"Component {CHECKOUT} was not found" in failed.text


async def test_without_a_target_the_command_says_what_to_configure(
    made: list[Core], clock: FixedClock, tmp_path: Path
) -> None:
    core = build(made, clock, tmp_path, "server: {port: 8080}\n")
    key = await declare(core)
    with pytest.raises(UserError, match=r"status page is not configured: add a `statuspage:`"):
        await Dispatcher(core).run(parse(f"statuspage open {key}"), actor=COMMANDER, channel=None)
    assert statuspage_adapter(core.settings) is None
    assert sp.PUBLISH not in outside_kinds(core)


async def test_the_command_previews_and_a_process_without_the_adapter_leaves_the_row(
    made: list[Core], clock: FixedClock, tmp_path: Path, statuspage: FakeStatuspage
) -> None:
    core = build(made, clock, tmp_path, statuspage_yaml(statuspage.url))
    key = await declare(core)
    outcome = await Dispatcher(core).run(
        parse(f"statuspage open {key}"), actor=COMMANDER, channel=None
    )
    assert outcome.statuspage is not None
    assert outcome.statuspage.action == "open"
    assert await core.statuspage.request(outcome.statuspage.token(), actor=COMMANDER)
    await core.delivery().drain()  # a CLI's worker: no adapter, the row waits for a server
    (row,) = await status_rows(core)
    assert (row.status, row.attempts) == ("pending", 0)
    assert statuspage.requests == []
    await deliver_all(core, worker(core), clock)
    assert len(statuspage.of(PAGE, key)) == 1


def test_the_statuspage_command_parses() -> None:
    assert parse("statuspage") == StatusPageCmd(None)
    assert parse("statuspage open INC-7") == StatusPageCmd("INC-7", "open")
    assert parse("statuspage INC-7 resolve public") == StatusPageCmd("INC-7", "resolve", "public")
    with pytest.raises(UsageError, match="is not a status page action or page name"):
        parse("statuspage publish now")


async def test_the_manager_page_and_the_postmortem_show_the_link(
    made: list[Core], clock: FixedClock, tmp_path: Path, statuspage: FakeStatuspage
) -> None:
    core = build(made, clock, tmp_path, statuspage_yaml(statuspage.url))
    key = await declare(core)
    markdown = await postmortem_markdown(core, key)
    assert "### Status page" not in markdown
    await publish(core, key)
    await deliver_all(core, worker(core), clock)
    (incident,) = statuspage.of(PAGE, key)
    markdown = await postmortem_markdown(core, key)
    assert "### Status page" in markdown
    assert incident["shortlink"] in markdown
