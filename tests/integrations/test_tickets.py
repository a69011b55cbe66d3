"""Follow-ups as tickets: the Jira and GitHub adapters against their strict stand-ins, then the
whole flow (command → outbox → ticket → readback → follow-up done) on the real store.

The stand-ins (``tests/fakes/jira.py``, ``tests/fakes/github.py``) are checked against the
vendored descriptions in ``test_ticket_standins.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.commands.parse import parse
from bot.commands.run import Dispatcher
from bot.config.sections import TicketTarget
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import tickets
from bot.delivery.worker import DeliveryWorker
from bot.drafts import postmortem_markdown
from bot.errors import ConfigError, UserError
from bot.ports.errors import Refused, Throttled, Unavailable
from bot.ports.tickets import TicketDraft
from bot.store.models import ExternalRecord, OutboxRow
from handlers.compose import outside_kinds
from integrations.github_issues import GitHubIssuesTracker
from integrations.jira import JiraTracker
from tests.fakes.github import RATE_LIMITED, FakeGitHub
from tests.fakes.jira import FakeJira

EMAIL, JIRA_TOKEN, GH_TOKEN = "bot@acme.example", "jira-secret", "ghp_secret"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HOSTILE = "<!channel> <script>alert(1)</script> & *bold* `tick`"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(EMAIL, JIRA_TOKEN) as fake:
        yield fake


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(GH_TOKEN) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_JIRA_EMAIL", EMAIL)
    monkeypatch.setenv("T_JIRA_TOKEN", JIRA_TOKEN)
    monkeypatch.setenv("T_GH_TOKEN", GH_TOKEN)


def tickets_yaml(jira_url: str, github_url: str) -> str:
    """The config of the README's example, pointed at the stand-ins."""
    return (
        "server: {public_url: 'https://warroom.example'}\n"
        "tickets:\n"
        "  default: ops\n"
        "  targets:\n"
        "    ops:\n"
        f"      {{kind: jira, url: '{jira_url}', email_env: T_JIRA_EMAIL, "
        "token_env: T_JIRA_TOKEN, project: OPS, labels: [incident], "
        "priority: {P1: Highest, P2: High}}\n"
        f"    gh: {{kind: github, url: '{github_url}', token_env: T_GH_TOKEN, "
        "repo: acme/platform, labels: [follow-up]}\n"
    )


@pytest.fixture
async def core(
    env: None, clock: FixedClock, tmp_path: Path, jira: FakeJira, github: FakeGitHub
) -> AsyncIterator[Core]:
    config = tmp_path / "warroom.yaml"
    config.write_text(tickets_yaml(jira.url, github.url))
    made = Core.build(load_settings(config), clock=clock)
    yield made
    await made.close()


def worker(core: Core) -> DeliveryWorker:
    """The server's worker: the ticket kinds composed as ``handlers/app.py`` does."""
    return core.delivery(kinds=outside_kinds(core))


async def deliver_all(core: Core, work: DeliveryWorker, clock: FixedClock) -> None:
    """Drain, moving time on past every backoff, until no ``ticket_file`` row is pending."""
    for _ in range(100):
        await work.drain()
        async with core.db.transaction(read_only=True) as session:
            pending = (
                await session.exec(
                    select(OutboxRow).where(
                        col(OutboxRow.kind) == tickets.FILE, col(OutboxRow.status) == "pending"
                    )
                )
            ).all()
        if not pending:
            return
        clock.advance(timedelta(seconds=61))
    raise AssertionError("ticket rows still pending")


async def command(core: Core, text: str, actor: str = "U1") -> str:
    text = text.removeprefix("/incident ")
    outcome = await Dispatcher(core).run(parse(text, key_prefix="INC"), actor=actor, channel=None)
    return outcome.text


def draft(marker: str = "warroom-INC-0001-1") -> TicketDraft:
    return TicketDraft(
        marker=marker,
        title="Add a queue depth alert",
        body="Add a queue depth alert\n\nFollow-up #1 of INC-0001",
        rank=0,
        severity="P1",
        link="https://warroom.example/incidents/INC-0001",
    )


def target(kind: str, url: str, **extra: object) -> TicketTarget:
    base: dict[str, object] = {"kind": kind, "url": url, "token_env": "T_GH_TOKEN"}
    if kind == "jira":
        base |= {"token_env": "T_JIRA_TOKEN", "email_env": "T_JIRA_EMAIL", "project": "OPS"}
    else:
        base |= {"repo": "acme/platform"}
    return TicketTarget.model_validate(base | extra)


# -- the adapters -----------------------------------------------------------------------------


async def test_jira_files_finds_and_reads_back_an_issue(env: None, jira: FakeJira) -> None:
    port = JiraTracker({"ops": target("jira", jira.url, priority={"P1": "Highest"})})
    made = await port.file("ops", draft())
    assert made.key == "OPS-1"
    assert made.url == f"{jira.url}/browse/OPS-1"
    assert not made.done
    fields = jira.issues["OPS-1"]["fields"]
    assert fields["priority"] == {"name": "Highest"}
    assert "warroom-INC-0001-1" in fields["labels"]
    assert fields["description"]["type"] == "doc"
    assert (await port.find("ops", "warroom-INC-0001-1")) is not None
    assert await port.find("ops", "warroom-INC-0001-2") is None
    first = await port.read("ops", made)
    assert first.version
    assert not first.done
    assert first.state == "To Do"
    assert await port.read("ops", first) is first  # unchanged: the same ref
    jira.transition("OPS-1", "Done")
    done = await port.read("ops", first)
    assert done.done
    assert done.state == "Done"


async def test_jira_answers_map_onto_the_port_errors(env: None, jira: FakeJira) -> None:
    port = JiraTracker({"ops": target("jira", jira.url, issue_type="Epic")})
    with pytest.raises(Refused, match=r"HTTP 400: issuetype: Specify an issue type"):
        await port.file("ops", draft())
    jira.faults = [429, 503]
    with pytest.raises(Throttled):
        await port.find("ops", "m")
    with pytest.raises(Unavailable):
        await port.find("ops", "m")
    jira.token = "rotated"
    with pytest.raises(Refused, match="401"):
        await port.find("ops", "m")


async def test_github_files_finds_and_reads_back_with_etags(env: None, github: FakeGitHub) -> None:
    port = GitHubIssuesTracker({"gh": target("github", github.url, labels=["follow-up"])})
    made = await port.file("gh", draft())
    assert made.key == "#1"
    assert made.url == "https://github.example/acme/platform/issues/1"
    body = github.issues[("acme/platform", 1)]["body"]
    assert body.endswith("<!-- warroom:warroom-INC-0001-1 -->")
    assert (await port.find("gh", "warroom-INC-0001-1")) == made.__class__(
        id="1", key="#1", url=made.url, state="open", done=False, version=""
    )
    again = await port.read("gh", made)
    assert again is made  # the ETag from the create still matches: 304
    assert github.requests[-1][2] == 304
    github.close("acme/platform", 1, "not_planned")
    closed = await port.read("gh", made)
    assert closed.done
    assert closed.state == "closed (not_planned)"
    picky = GitHubIssuesTracker({"gh": target("github", github.url, done_states=["completed"])})
    assert not (await picky.read("gh", made)).done


async def test_github_rate_limits_are_throttling_and_bad_tokens_refusals(
    env: None, github: FakeGitHub
) -> None:
    port = GitHubIssuesTracker({"gh": target("github", github.url)}, now=lambda: 0.0)
    github.faults = [RATE_LIMITED, 429, 500]
    with pytest.raises(Throttled, match="rate limit"):
        await port.file("gh", draft())
    with pytest.raises(Throttled):
        await port.file("gh", draft())
    with pytest.raises(Unavailable):
        await port.file("gh", draft())
    assert github.issues == {}
    github.token = "other"
    with pytest.raises(Refused, match="HTTP 401: Bad credentials"):
        await port.file("gh", draft())


# -- the flow ---------------------------------------------------------------------------------


async def test_a_follow_up_is_filed_once_under_faults_and_done_when_its_ticket_is(
    core: Core, jira: FakeJira, clock: FixedClock
) -> None:
    key = (await core.incidents.declare(title="Queue stuck", severity="P1", actor="U1")).key
    jira.faults = [500, 429, 503]  # the first attempts fail before anything is applied
    said = await command(core, f"/incident followup {key} add a queue depth alert @alice")
    assert said == f"Follow-up #1 added to {key}. Filing it on `ops` (Jira)."
    work = worker(core)
    await deliver_all(core, work, clock)
    assert list(jira.issues) == ["OPS-1"]  # exactly one ticket
    issue = jira.issues["OPS-1"]["fields"]
    assert issue["summary"] == "add a queue depth alert"
    assert issue["priority"] == {"name": "Highest"}
    (item,) = await core.incidents.follow_ups(key)
    assert item.url == f"{jira.url}/browse/OPS-1"
    assert item.status == "open"
    kinds = [e.kind for e in await core.incidents.timeline(key)]
    assert kinds.count(tickets.TICKET_FILED) == 1

    clock.advance(timedelta(minutes=6))
    await work.drain()  # a poll: still To Do
    assert (await core.incidents.follow_ups(key))[0].status == "open"
    jira.transition("OPS-1", "Done")
    clock.advance(timedelta(minutes=6))
    await work.drain()
    (item,) = await core.incidents.follow_ups(key)
    assert item.status == "done"
    assert item.done_at is not None
    events = await core.incidents.timeline(key)
    done = [e for e in events if e.kind == tickets.FOLLOWUP_DONE]
    assert len(done) == 1
    assert "OPS-1" in done[0].text

    page = core.templates.render(
        "web/incident.html.j2",
        incident=await core.incidents.get(key),
        events=events,
        follow_ups=[item],
        alerts=[],
        transcript=[],
        runs=[],
        exported=[],
        status_pages=[],
        request_path=f"/incidents/{key}",
        urlencode=lambda x: x,
        csrf=None,
    )
    assert f'#1 [done] add a queue depth alert (owner alice) · <a href="{item.url}"' in page
    markdown = await postmortem_markdown(core, key)
    assert f"| 1 | [add a queue depth alert](<{item.url}>) | alice | done |" in markdown

    clock.advance(timedelta(hours=2))
    before = len(jira.requests)
    await work.drain()
    assert len(jira.requests) == before  # done: no more polls


async def test_a_lost_answer_is_found_by_its_marker_not_filed_twice(
    core: Core, github: FakeGitHub, clock: FixedClock
) -> None:
    key = (await core.incidents.declare(title="Disk full", severity="P2", actor="U1")).key
    await command(core, f"/incident followup {key} rotate logs tracker:gh")
    async with core.db.transaction() as session:  # a worker filed it, then crashed unsettled
        row = (await session.exec(select(OutboxRow).where(OutboxRow.kind == tickets.FILE))).one()
        row.claimed_until, row.claimed_by = NOW - timedelta(seconds=1), "crashed"
        session.add(row)
    port = GitHubIssuesTracker(core.settings.tickets.targets)
    await port.file("gh", draft(f"warroom-{key}-1"))
    await deliver_all(core, worker(core), clock)
    assert len(github.filed()) == 1
    async with core.db.transaction(read_only=True) as session:
        record = (await session.exec(select(ExternalRecord))).one()
    assert record.ref == "ticket:gh:1"
    assert record.data["key"] == "#1"


async def test_filing_existing_follow_ups_by_hand_and_hostile_text(
    core: Core, github: FakeGitHub, jira: FakeJira, clock: FixedClock
) -> None:
    key = (await core.incidents.declare(title="Login broken", severity="P3", actor="U1")).key
    await core.incidents.add_follow_up(key, HOSTILE, actor="U1")  # recorded without the command
    said = await command(core, f"/incident followup {key} file all tracker:gh")
    assert said == f"Filing follow-up(s) #1 of {key} on `gh` (GitHub)."
    await deliver_all(core, worker(core), clock)
    (issue,) = github.filed()
    assert issue["title"] == HOSTILE  # the ticket carries the text as written
    assert issue["labels"] == [{"name": "follow-up"}]
    again = await command(core, f"/incident followup {key} file 1 tracker:gh")
    assert again == "Filed already: #1 as #1; reading their state back now."
    page = core.templates.render(
        "web/incident.html.j2",
        incident=await core.incidents.get(key),
        events=[],
        follow_ups=await core.incidents.follow_ups(key),
        alerts=[],
        transcript=[],
        runs=[],
        exported=[],
        status_pages=[],
        request_path="/",
        urlencode=lambda x: x,
        csrf=None,
    )
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_wrong_requests_change_nothing(core: Core) -> None:
    key = (await core.incidents.declare(title="x", severity="P3", actor="U1")).key
    with pytest.raises(UserError, match=r"No ticket target `nope`: use one of `ops`, `gh`"):
        await command(core, f"/incident followup {key} fix it tracker:nope")
    with pytest.raises(UserError, match="has no follow-up #7"):
        await command(core, f"/incident followup {key} file 7")
    assert await core.incidents.follow_ups(key) == []


async def test_without_a_tracker_follow_ups_are_kept_and_filing_is_refused_clearly(
    env: None, clock: FixedClock, tmp_path: Path
) -> None:
    made = Core.build(load_settings(), clock=clock)
    try:
        key = (await made.incidents.declare(title="x", severity="P3", actor="U1")).key
        assert await command(made, f"/incident followup {key} fix it") == (
            f"Follow-up #1 added to {key}."
        )
        with pytest.raises(UserError, match=r"Follow-up tickets are not configured"):
            await command(made, f"/incident followup {key} file 1")
        await made.delivery().drain()
        async with made.db.transaction(read_only=True) as session:
            kinds = {r.kind for r in (await session.exec(select(OutboxRow))).all()}
        assert tickets.FILE not in kinds
    finally:
        await made.close()


def test_the_config_is_checked_with_its_place(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bad.yaml"
    jira = "{kind: jira, url: 'https://a.example', token_env: T_JIRA_TOKEN}"
    config.write_text(f"tickets:\n  targets:\n    ops: {jira}\n")
    with pytest.raises(ConfigError, match="project"):
        load_settings(config)
    monkeypatch.delenv("T_GH_TOKEN")
    config.write_text(
        "tickets:\n  targets:\n    gh: {kind: github, token_env: T_GH_TOKEN, repo: a/b}\n"
    )
    with pytest.raises(ConfigError, match="T_GH_TOKEN is not set"):
        load_settings(config)
