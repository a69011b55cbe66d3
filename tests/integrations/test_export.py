"""The post-mortem exported to Confluence and GitHub: the adapters, then the whole flow.

The vendors here are the strict stand-ins of ``tests/fakes/confluence.py`` and
``tests/fakes/github_contents.py`` (each checked against the vendor's description in
``test_export_standins.py``), on loopback; the adapters talk to them over real HTTP. The store,
the outbox and the worker are the real ones, on SQLite and on Postgres.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.clock import FixedClock
from bot.commands.parse import parse
from bot.commands.run import Dispatcher
from bot.config.export import ConfluenceTarget, GitHubTarget
from bot.config.settings import load_settings
from bot.core import Core
from bot.delivery import exports
from bot.delivery.transcript import transcript_of
from bot.errors import ConfigError, UserError
from bot.ports.errors import Refused, Throttled
from bot.ports.export import ExportDocument
from handlers.cli import cli
from integrations.confluence import ConfluenceExporter, storage_format
from integrations.github_export import GitHubExporter
from tests.fakes.confluence import FakeConfluence, storage_problem
from tests.fakes.github_contents import FakeGitHubContents
from tests.integrations.export_helpers import (
    EMAIL,
    GH_TOKEN,
    REPO,
    TOKEN,
    deliver_exports,
    export_rows,
    export_worker,
    export_yaml,
    records,
    set_credentials,
)

HOSTILE = "<script>alert(1)</script> ]]> & x < y"


@pytest.fixture
def conf() -> Iterator[FakeConfluence]:
    with FakeConfluence(EMAIL, TOKEN) as fake:
        yield fake


@pytest.fixture
def gh() -> Iterator[FakeGitHubContents]:
    with FakeGitHubContents(GH_TOKEN, repos={REPO}) as fake:
        yield fake


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    set_credentials(monkeypatch)


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


def document(html: str = "<h1>INC-0001</h1><p>first</p>", key: str = "INC-0001") -> ExportDocument:
    return ExportDocument(
        key=key, title=f"{key} post-mortem: checkout", markdown="# x\n", html=html
    )


def confluence(conf: FakeConfluence, monkeypatch: pytest.MonkeyPatch) -> ConfluenceExporter:
    set_credentials(monkeypatch)
    target = ConfluenceTarget(
        kind="confluence",
        url=conf.url,
        space="OPS",
        email_env="T_CONF_EMAIL",
        token_env="T_CONF_TOKEN",
    )
    return ConfluenceExporter({"wiki": target})


def github(gh: FakeGitHubContents, monkeypatch: pytest.MonkeyPatch) -> GitHubExporter:
    set_credentials(monkeypatch)
    target = GitHubTarget(kind="github", url=gh.url, repo=REPO, token_env="T_GH_TOKEN")
    return GitHubExporter({"repo": target})


# -- storage format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        f"<p>{HOSTILE.replace('&', '&amp;').replace('<', '&lt;')}</p>",  # as markdown-it escapes
        "<p>unclosed <strong>bold <em>both</p><br><hr><p>stray</em></b> end</p>",
        '<p><a href="javascript:alert(1)" onclick="x()">link</a> <img src=x onerror=y></p>',
        "<pre><code class='language-sh'>a ]]> b &amp;&amp; c\x00\x07</code></pre>",
        "<table><tr><td style='x'>1</td></tr></table><script>evil()</script><p>after</p>",
    ],
)
def test_storage_format_is_always_well_formed_and_keeps_text_as_text(html: str) -> None:
    storage = storage_format(html)
    assert storage_problem(storage) is None
    assert "<script" not in storage
    assert "javascript:" not in storage
    assert "onclick" not in storage
    assert "onerror" not in storage
    assert "]]>" not in storage


def test_hostile_text_arrives_as_text() -> None:
    storage = storage_format(f"<p>{HOSTILE.replace('&', '&amp;').replace('<', '&lt;')}</p>")
    assert storage == ("<p>&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; &amp; x &lt; y</p>")
    assert storage_format(
        "<p>a<b>bold</b><i>it</i><a href='https://x.example/?a=1&amp;b=2'>l</a>"
    ) == ('<p>a<strong>bold</strong><em>it</em><a href="https://x.example/?a=1&amp;b=2">l</a></p>')


# -- the adapters -----------------------------------------------------------------------------


async def test_confluence_creates_then_updates_the_same_page(
    conf: FakeConfluence, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = confluence(conf, monkeypatch)
    assert await port.find("wiki", document()) is None
    first = await port.export("wiki", document(), None)
    page = conf.only_page()
    assert (first.id, first.version) == (page.id, "1")
    assert first.url == f"{conf.url}/wiki/spaces/OPS/pages/{page.id}/INC-0001+post-mortem:+checkout"
    assert page.text() == "INC-0001first"
    second = await port.export("wiki", document("<p>second</p>"), first)
    assert (second.id, second.version) == (page.id, "2")
    assert conf.only_page().body == "<p>second</p>"
    assert await port.find("wiki", document()) == second


async def test_confluence_a_page_saved_meanwhile_is_re_read_not_overwritten_blindly(
    conf: FakeConfluence, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = confluence(conf, monkeypatch)
    first = await port.export("wiki", document(), None)
    conf.edit(first.id, "<p>a reviewer's edit</p>")  # version 2, made in the browser
    updated = await port.export("wiki", document("<p>third</p>"), first)  # sends 2: 409
    assert updated.version == "3"
    assert conf.only_page().bodies[-1] == "<p>third</p>"
    assert ("GET", f"/wiki/api/v2/pages/{first.id}") in conf.requests


async def test_confluence_answers_map_onto_the_port(
    conf: FakeConfluence, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = confluence(conf, monkeypatch)
    monkeypatch.setenv("T_CONF_TOKEN", "wrong")
    with pytest.raises(Refused, match="wiki: HTTP 401: Unauthorized"):
        await port.export("wiki", document(), None)
    monkeypatch.setenv("T_CONF_TOKEN", TOKEN)
    conf.fail_next = [429]
    with pytest.raises(Throttled) as throttled:
        await port.export("wiki", document(), None)
    assert throttled.value.retry_after == 1.0
    conf.add_page("OPS", "INC-0001 post-mortem: checkout")  # the title is taken: found, updated
    ref = await port.export("wiki", document(), None)
    assert conf.only_page().version == 2
    assert ref.version == "2"
    with pytest.raises(Refused, match="no confluence export target 'nope'"):
        await port.export("nope", document(), None)


async def test_github_commits_the_file_then_updates_it_with_its_sha(
    gh: FakeGitHubContents, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = github(gh, monkeypatch)
    assert await port.find("repo", document()) is None
    first = await port.export("repo", document(), None)
    path = "postmortems/INC-0001.md"
    assert (first.id, first.version) == (path, gh.sha(REPO, path))
    assert first.url == f"https://github.com/{REPO}/blob/main/{path}"
    changed = ExportDocument("INC-0001", "INC-0001 post-mortem: checkout", "# second\n", "")
    second = await port.export("repo", changed, first)
    assert gh.file(REPO, path) == "# second\n"
    assert second.version == gh.sha(REPO, path) != first.version
    assert [c.message for c in gh.commits] == ["INC-0001 post-mortem: checkout"] * 2
    gh.write(REPO, path, "# edited by hand\n")  # the stored sha is stale now: 409, re-read
    third = await port.export("repo", document(), second)
    assert gh.file(REPO, path) == "# x\n"
    assert third.version == gh.sha(REPO, path)
    again = await port.export("repo", document(), None)  # no sha: 422, re-read, same content
    assert again == third
    assert len(gh.commits) == 3  # nothing to change: no empty commit


async def test_github_answers_map_onto_the_port(
    gh: FakeGitHubContents, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = github(gh, monkeypatch)
    monkeypatch.setenv("T_GH_TOKEN", "ghp_wrong")
    with pytest.raises(Refused, match="repo: HTTP 401: Bad credentials"):
        await port.export("repo", document(), None)
    monkeypatch.setenv("T_GH_TOKEN", GH_TOKEN)
    gh.fail_next = [403]
    with pytest.raises(Throttled, match="API rate limit exceeded"):
        await port.export("repo", document(), None)
    gh.repos.clear()
    with pytest.raises(Refused, match="repo: HTTP 404: Not Found"):
        await port.export("repo", document(), None)


# -- the flow ---------------------------------------------------------------------------------


async def test_export_then_re_export_is_one_page_version_2_with_the_new_draft(
    made: list[Core], clock: FixedClock, tmp_path: Path, conf: FakeConfluence
) -> None:
    core = build(made, clock, tmp_path, export_yaml(conf.url))
    incident = await core.incidents.declare(title=HOSTILE, actor="U0ALICE", severity="P1")
    work = export_worker(core)
    await work.drain()
    dispatcher = Dispatcher(core)
    said = await dispatcher.run(
        parse(f"postmortem {incident.key} export wiki"), actor="U0ALICE", channel=None
    )
    assert (
        said.text == f"📤 Exporting {incident.key}'s post-mortem to `wiki`: the link follows here."
    )
    await deliver_exports(core, work, clock)
    page = conf.only_page()
    assert page.version == 1
    assert page.title == f"{incident.key} post-mortem: {HOSTILE}"
    assert HOSTILE in page.text()  # the incident's text, as text
    assert "<script>" not in page.body

    await core.incidents.note(incident.key, "restarted the checkout pods", actor="U0ALICE")
    await dispatcher.run(parse(f"postmortem {incident.key} export"), actor="U0ALICE", channel=None)
    await deliver_exports(core, work, clock)
    page = conf.only_page()
    assert page.version == 2
    assert "restarted the checkout pods" in page.text()
    (record,) = await records(core)
    assert (record.ref, record.external_id, record.version) == ("export:wiki", page.id, "2")
    assert record.url is not None
    assert record.url.startswith(f"{conf.url}/wiki/spaces/OPS/pages/{page.id}/")
    events = [e for e in await core.incidents.timeline(incident.key) if e.kind == exports.EXPORTED]
    assert [e.data["version"] for e in events] == ["1", "2"]
    assert (
        events[-1].text == f"📄 Post-mortem updated on Confluence `wiki`: {record.url}, version 2"
    )
    said_in_channel = [t.text for t in await transcript_of(core.db, incident.id or 0)]
    assert any(record.url in text for text in said_in_channel), said_in_channel


async def test_under_faults_and_a_lost_answer_there_is_exactly_one_page(
    made: list[Core], clock: FixedClock, tmp_path: Path, conf: FakeConfluence
) -> None:
    core = build(made, clock, tmp_path, export_yaml(conf.url))
    incident = await core.incidents.declare(
        title="checkout failing", actor="U0ALICE", severity="P1"
    )
    work = export_worker(core)
    await work.drain()
    conf.fail_next = [429, 500, 503]
    conf.lose_next = 1  # the page is made, the answer never arrives
    await core.exports.request(incident.key, None, actor="U0ALICE")
    await deliver_exports(core, work, clock)
    page = conf.only_page()
    assert page.version == 2  # the retry found the page the lost answer made, and updated it
    assert sum(conf.faults.values()) == 3
    assert [m for m, p in conf.requests if p.endswith("/pages") and m == "POST"] == ["POST"]
    (row,) = await export_rows(core)
    assert row.status == "done"
    assert row.result["id"] == page.id
    (record,) = await records(core)
    assert record.external_id == page.id


async def test_github_target_flow_and_a_refusal_is_told(
    made: list[Core], clock: FixedClock, tmp_path: Path, gh: FakeGitHubContents
) -> None:
    core = build(made, clock, tmp_path, export_yaml(github_url=gh.url))
    incident = await core.incidents.declare(title="payments slow", actor="U0ALICE", severity="P2")
    work = export_worker(core)
    await core.exports.request(incident.key, "repo", actor="U0ALICE")
    await deliver_exports(core, work, clock)
    text = gh.file(REPO, f"postmortems/{incident.key}.md")
    assert text is not None
    assert "payments slow" in text
    gh.repos.clear()  # the repository is gone: refused, told, not retried
    await core.exports.request(incident.key, "repo", actor="U0ALICE")
    await deliver_exports(core, work, clock)
    failed = [e for e in await core.incidents.timeline(incident.key) if e.kind == exports.FAILED]
    assert [e.text for e in failed] == [
        "⚠️ Could not export the post-mortem to GitHub `repo`: refused: repo: HTTP 404: Not Found"
    ]
    assert [r.status for r in await export_rows(core)] == ["done", "failed"]


async def test_unconfigured_and_unknown_targets_are_refused_and_change_nothing(
    made: list[Core], clock: FixedClock, tmp_path: Path, conf: FakeConfluence
) -> None:
    bare = build(made, clock, tmp_path, "server: {public_url: 'https://warroom.example'}\n")
    incident = await bare.incidents.declare(title="x", actor="U0ALICE", severity="P3")
    before = len(await bare.incidents.timeline(incident.key))
    with pytest.raises(UserError, match="Post-mortem export is not configured: add a target"):
        await Dispatcher(bare).run(
            parse(f"postmortem {incident.key} export"), actor="U0ALICE", channel=None
        )
    core = build(made, clock, tmp_path, export_yaml(conf.url))
    with pytest.raises(UserError, match="No export target `confluence`: the targets are `wiki`"):
        await core.exports.request(incident.key, "confluence", actor="U0ALICE")
    assert len(await core.incidents.timeline(incident.key)) == before
    assert await export_rows(core) == []


def test_config_errors_name_the_file_line_and_what_is_wrong(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "warroom.yaml"
    monkeypatch.delenv("T_CONF_TOKEN")
    config.write_text(export_yaml("https://acme.atlassian.net"))
    with pytest.raises(ConfigError, match=r"warroom.yaml:3: .*T_CONF_TOKEN is not set"):
        load_settings(config)
    monkeypatch.setenv("T_CONF_TOKEN", TOKEN)
    config.write_text(
        "export:\n  targets:\n    repo: {kind: github, repo: acme/pm, path: 'pm/{id}.md', "
        "token_env: T_GH_TOKEN}\n"
    )
    with pytest.raises(ConfigError, match=r"unknown placeholder \{id\}"):
        load_settings(config)
    config.write_text("export:\n  targets:\n    x: {kind: sharepoint}\n")
    with pytest.raises(ConfigError, match="confluence', 'github'"):
        load_settings(config)


# -- the command line -------------------------------------------------------------------------


def test_cli_export_prints_the_page_and_refuses_when_unconfigured(
    env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf: FakeConfluence
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "warroom.yaml"
    config.write_text("server: {public_url: 'https://warroom.example'}\n")

    def run(*args: str) -> object:
        return CliRunner().invoke(cli, ["--config", str(config), "--as", "U-oncall", *args])

    made = CliRunner().invoke(
        cli, ["--config", str(config), "incident", "declare", "db down", "--severity", "P1"]
    )
    assert made.exit_code == 0, made.output
    refused = CliRunner().invoke(
        cli, ["--config", str(config), "postmortem", "INC-0001", "--export", "wiki"]
    )
    assert refused.exit_code == 1
    assert "Post-mortem export is not configured" in refused.output
    config.write_text(export_yaml(conf.url))
    done = CliRunner().invoke(
        cli, ["--config", str(config), "postmortem", "INC-0001", "--export", "wiki"]
    )
    assert done.exit_code == 0, done.output
    page = conf.only_page()
    assert done.output.startswith("📄 Post-mortem exported to Confluence `wiki`: ")
    assert page.id in done.output
    assert "db down" in page.text()
    del run


# -- the manager page -------------------------------------------------------------------------


async def test_the_incident_page_links_the_exported_page(
    made: list[Core],
    clock: FixedClock,
    tmp_path: Path,
    conf: FakeConfluence,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starlette.testclient import TestClient

    from handlers.app import create_app
    from tests.web.forms import login_as

    core = build(made, clock, tmp_path, export_yaml(conf.url))
    incident = await core.incidents.declare(title="db down", actor="U0ALICE", severity="P1")
    await core.exports.request(incident.key, "wiki", actor="U0ALICE")
    await deliver_exports(core, export_worker(core), clock)
    (record,) = await records(core)
    monkeypatch.setenv("WARROOM_WEB__TOKEN", "manager-token-123")
    settings = load_settings(tmp_path / "warroom-0.yaml")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        login_as(client, "manager-token-123", "/login?next=/incidents")
        page = client.get(f"/incidents/{incident.key}")
    assert page.status_code == 200
    assert f'<a href="{record.url}" rel="noopener noreferrer">wiki</a>' in page.text
    assert "(confluence, version 1," in page.text
