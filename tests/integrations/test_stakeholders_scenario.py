"""Issue #17's done-when: the stakeholders' integrations together, driven the way people do.

One incident, on SQLite and on Postgres, through the real ASGI app (``create_app``) with Bolt
against the fake Slack, with a test clock:

- the commander declares it with a signed ``/incident declare``;
- ``/incident statuspage open`` previews, the Publish button publishes to the Statuspage
  stand-in (the outbox and the real delivery worker, over loopback HTTP);
- two ``/incident followup`` commands file a Jira ticket and a GitHub issue at their stand-ins;
- the GitHub issue is closed at the stand-in and the clock moves past the ticket poll;
- the incident is resolved (and its status incident too, from the card's offer);
- ``/incident postmortem export wiki`` puts the draft into the Confluence stand-in.

Then what a manager sees: the exported Confluence page and the manager incident page (over
HTTP, after logging in) both carry the status page's public link and the two follow-ups, one of
them done with its ticket link; the timeline holds every step.

The config is one file made of the three integrations' own test pieces
(:func:`scenario_yaml`), loaded as one settings object.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from bot.clock import FixedClock
from bot.config.settings import Settings, load_settings
from bot.core import Core
from bot.delivery import exports, tickets
from bot.delivery import statuspage as sp
from bot.store.models import TimelineEvent
from handlers.app import create_app
from handlers.slack.blocks.statuspage import STATUSPAGE_CONFIRM, STATUSPAGE_RESOLVE
from tests.fakes.confluence import FakeConfluence, Page
from tests.fakes.github import FakeGitHub
from tests.fakes.jira import FakeJira
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOT_TOKEN
from tests.fakes.statuspage import FakeStatuspage
from tests.integrations import export_helpers
from tests.integrations.test_statuspage import API_KEY, CHECKOUT, PAGE, SEARCH, statuspage_yaml
from tests.integrations.test_tickets import EMAIL, GH_TOKEN, JIRA_TOKEN, tickets_yaml
from tests.slack.test_e2e import SECRET, Harness
from tests.slack.test_statuspage_in_slack import buttons, card_buttons, first_incident_channel
from tests.slack.test_statuspage_in_slack import press as press_button
from tests.web.forms import login_as

WEB_TOKEN = "m" * 32
TITLE = "Checkout payments failing"
FIRST = "Add a payment error-rate alert"  # filed on Jira (the default target), stays open
SECOND = "Pin the payment client version"  # filed on GitHub, closed there: done
REPO = "acme/platform"


def scenario_yaml(statuspage_url: str, jira_url: str, github_url: str, confluence_url: str) -> str:
    """The three integrations' own test configs, combined into one file.

    Each piece starts with the same ``server:`` line; a YAML mapping must not repeat a key
    (PyYAML would silently keep the last), so it is kept once.
    """
    pieces = [
        statuspage_yaml(statuspage_url),
        tickets_yaml(jira_url, github_url),
        export_helpers.export_yaml(confluence_url=confluence_url),
    ]
    server: set[str] = set()
    lines: list[str] = []
    for piece in pieces:
        for line in piece.splitlines():
            if line.startswith("server:"):
                if line in server:
                    continue
                server.add(line)
            lines.append(line)
    text = "\n".join(lines) + "\n"
    tops = [line.split(":", 1)[0] for line in lines if line and not line[0].isspace()]
    assert len(tops) == len(set(tops)), f"a top-level key twice: {tops}"
    return text


@dataclass
class Stage:
    """The app under test, the stand-ins it talks to, and the test clock it runs on."""

    harness: Harness
    clock: FixedClock
    statuspage: FakeStatuspage
    jira: FakeJira
    github: FakeGitHub
    confluence: FakeConfluence

    @property
    def fake(self) -> FakeSlack:
        return self.harness.fake

    @property
    def core(self) -> Core:
        app: Any = self.harness.client.app
        core: Core = app.state.core
        return core

    def timeline(self, key: str = "INC-0001") -> list[TimelineEvent]:
        """The timeline, read by the app's own core on the app's event loop."""
        portal = self.harness.client.portal
        assert portal is not None
        return portal.call(self.core.incidents.timeline, key)

    def kinds(self, key: str = "INC-0001") -> list[str]:
        return [e.kind for e in self.timeline(key)]

    def wait_kind(self, kind: str, count: int = 1) -> list[TimelineEvent]:
        """Wait until the timeline has ``count`` events of ``kind``; all of that kind."""

        def enough() -> list[TimelineEvent]:
            found = [e for e in self.timeline() if e.kind == kind]
            return found if len(found) >= count else []

        return self.harness.wait(f"{count} {kind} event(s)", enough, seconds=30)  # type: ignore[no-any-return]

    def say(self, text: str, channel: str) -> str:
        """``/incident <text>`` in ``channel`` as the commander; the ephemeral answer's text."""
        before = len(self.fake.responses)
        assert self.harness.command(text, channel=channel, user=ALICE.id).status_code == 200
        answer = self.harness.wait(
            f"the answer to {text!r}", lambda: self.fake.responses[before:], seconds=30
        )
        return str(answer[-1].get("text", ""))

    def publish(self, text: str, channel: str) -> dict[str, Any]:
        """``/incident statuspage …``: the preview shown to the commander, then Publish."""
        before = len(self.fake.responses)
        assert self.harness.command(text, channel=channel, user=ALICE.id).status_code == 200
        shown = self.harness.wait("the preview", lambda: self.fake.responses[before:])[-1]
        return self.confirm(shown, channel)

    def confirm(self, shown: dict[str, Any], channel: str) -> dict[str, Any]:
        (publish,) = [b for b in buttons(shown["blocks"]) if b["action_id"] == STATUSPAGE_CONFIRM]
        press_button(self.harness, channel, publish)
        return shown


@pytest.fixture
def stage(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: FixedClock
) -> Iterator[Stage]:
    pages = {PAGE: {CHECKOUT: "Checkout", SEARCH: "Search"}}
    with (
        FakeStatuspage({API_KEY}, pages) as statuspage,
        FakeJira(EMAIL, JIRA_TOKEN) as jira,
        FakeGitHub(GH_TOKEN) as github,
        FakeConfluence(export_helpers.EMAIL, export_helpers.TOKEN) as confluence,
        running_fake_slack_in_thread(rate_limit_scale=60.0) as fake,
    ):
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("WARROOM_WEB__TOKEN", WEB_TOKEN)
        # The three pieces' variables. Both the ticket and the export helpers name their
        # GitHub token T_GH_TOKEN (with different values): only the tickets use GitHub here.
        monkeypatch.setenv("T_SP_KEY", API_KEY)
        monkeypatch.setenv("T_JIRA_EMAIL", EMAIL)
        monkeypatch.setenv("T_JIRA_TOKEN", JIRA_TOKEN)
        monkeypatch.setenv("T_GH_TOKEN", GH_TOKEN)
        monkeypatch.setenv("T_CONF_EMAIL", export_helpers.EMAIL)
        monkeypatch.setenv("T_CONF_TOKEN", export_helpers.TOKEN)
        config = tmp_path / "warroom.yaml"
        config.write_text(scenario_yaml(statuspage.url, jira.url, github.url, confluence.url))
        settings = load_settings(config)
        # The public URL is https: the login cookie is Secure, so the client speaks https.
        app = create_app(settings, clock=clock)
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
            yield Stage(Harness(client, fake), clock, statuspage, jira, github, confluence)
        fake.assert_clean()


def test_the_pieces_make_one_config_with_every_section(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "T_SP_KEY": API_KEY,
        "T_JIRA_EMAIL": EMAIL,
        "T_JIRA_TOKEN": JIRA_TOKEN,
        "T_GH_TOKEN": GH_TOKEN,
        "T_CONF_EMAIL": export_helpers.EMAIL,
        "T_CONF_TOKEN": export_helpers.TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    text = scenario_yaml("http://sp.test", "http://jira.test", "http://gh.test", "http://wiki.test")
    assert sorted(yaml.safe_load(text)) == ["export", "server", "statuspage", "tickets"]
    config = tmp_path / "warroom.yaml"
    config.write_text(text)
    settings: Settings = load_settings(config)
    assert settings.server.public_url == "https://warroom.example"
    assert settings.statuspage["public"].page_id == PAGE
    assert set(settings.tickets.targets) == {"ops", "gh"}
    assert settings.tickets.default == "ops"
    assert set(settings.export.targets) == {"wiki"}
    masked = json.dumps(settings.masked())
    for secret in (API_KEY, JIRA_TOKEN, GH_TOKEN, export_helpers.TOKEN):
        assert secret not in masked


def shown_text(html: str) -> str:
    """What a browser shows of an HTML page: tags gone, entities read."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def links(markup: str) -> dict[str, str]:
    """``href`` → the link's text, for every anchor in ``markup``."""
    found = re.findall(r'<a href="([^"]+)"[^>]*>(.*?)</a>', markup, flags=re.S)
    return {unescape(href): shown_text(label).strip() for href, label in found}


def follow_up_rows(page: Page) -> list[str]:
    """The Confluence page's action item rows, as a reader reads them (cells joined by |)."""
    rows = []
    for row in page.tree().iter("tr"):
        cells = ["".join(cell.itertext()).strip() for cell in row]
        if len(cells) == 5 and cells[0].isdigit():
            rows.append(" | ".join(cells))
    return rows


def test_declare_publish_file_close_resolve_export_and_what_managers_see(stage: Stage) -> None:
    fake, clock = stage.fake, stage.clock
    general = fake.channel_by_name("general").id

    # Declared from Slack, with Alice leading (commander: allowed to publish).
    declared = stage.harness.command(
        f"declare {TITLE} sev:P1 service:checkout lead:<@{ALICE.id}>", channel=general
    )
    assert declared.status_code == 200
    channel = stage.harness.wait("the incident channel", lambda: first_incident_channel(fake)).id
    stage.harness.wait("the card", lambda: card_buttons(fake, channel))

    # The status page: preview, Publish; the worker delivers it to the stand-in.
    shown = stage.publish("statuspage open", channel)
    assert "INCIDENT: " + TITLE in json.dumps(shown["blocks"])
    (published,) = stage.wait_kind(sp.PUBLISHED)
    (status_incident,) = stage.statuspage.of(PAGE, "INC-0001")
    public_url = status_incident["shortlink"]
    assert public_url.startswith("http://stspg.io/")
    assert public_url in published.text

    # Two follow-ups: the first on Jira (the default target), the second on GitHub.
    said = stage.say(f"followup {FIRST}", channel)
    assert said == "Follow-up #1 added to INC-0001. Filing it on `ops` (Jira)."
    said = stage.say(f"followup {SECOND} tracker:gh", channel)
    assert said == "Follow-up #2 added to INC-0001. Filing it on `gh` (GitHub)."
    filed = stage.wait_kind(tickets.TICKET_FILED, 2)
    assert len(filed) == 2
    assert list(stage.jira.issues) == ["OPS-1"]
    assert stage.jira.issues["OPS-1"]["fields"]["summary"] == FIRST
    (issue,) = stage.github.filed(REPO)
    assert issue["title"] == SECOND
    jira_url = f"{stage.jira.url}/browse/OPS-1"
    github_url = issue["html_url"]

    # Someone closes the GitHub issue; the next poll (5 minutes on) reads it back as done.
    stage.github.close(REPO, issue["number"], "completed")
    clock.advance(timedelta(minutes=6))
    (done,) = stage.wait_kind(tickets.FOLLOWUP_DONE)
    assert done.text == "✅ Follow-up #2 is done: #1 on `gh` (GitHub) is closed (completed)"
    clock.advance(timedelta(minutes=1))

    # Resolved from Slack; the status incident is resolved from the card's offer.
    stage.say("resolve Pinned the payment client back to 4.2", channel)
    offer = stage.harness.wait(
        "the card's resolve offer",
        lambda: [b for b in card_buttons(fake, channel) if b["action_id"] == STATUSPAGE_RESOLVE],
    )[0]
    before = len(fake.responses)
    press_button(stage.harness, channel, offer)
    closing = stage.harness.wait("the resolution preview", lambda: fake.responses[before:])[-1]
    assert "INCIDENT RESOLVED" in json.dumps(closing["blocks"])
    stage.confirm(closing, channel)
    assert len(stage.wait_kind(sp.PUBLISHED, 2)) == 2
    assert stage.statuspage.of(PAGE, "INC-0001")[0]["status"] == "resolved"

    # The post-mortem, exported to Confluence.
    said = stage.say("postmortem export wiki", channel)
    assert said == "📤 Exporting INC-0001's post-mortem to `wiki`: the link follows here."
    (exported,) = stage.wait_kind(exports.EXPORTED)
    page = stage.confluence.only_page()
    assert page.title == f"INC-0001 post-mortem: {TITLE}"

    # On the timeline: every step, once.
    kinds = stage.kinds()
    assert kinds.count(sp.PUBLISHED) == 2  # the open and the resolve
    assert kinds.count(tickets.TICKET_FILED) == 2
    assert kinds.count(tickets.FOLLOWUP_DONE) == 1
    assert kinds.count(exports.EXPORTED) == 1
    assert kinds.index(sp.PUBLISHED) < kinds.index(tickets.TICKET_FILED)
    assert kinds.index(tickets.FOLLOWUP_DONE) < kinds.index("resolved")
    assert kinds.index("resolved") < kinds.index(exports.EXPORTED)

    # The Confluence page, as a reader sees it: the public link, one of two follow-ups done.
    text = page.text()
    assert "Status page\n\npublic: public status incident (last resolved)" in text
    anchors = links(page.body)
    assert anchors.get(public_url) == "public status incident"
    assert f"📣 Status page `public` opened (investigating, impact critical): {public_url}" in text
    rows = follow_up_rows(page)
    assert len(rows) == 2, rows
    assert [row.rsplit(" | ", 1)[0] for row in rows] == [  # number, action, owner, status
        f"1 | {FIRST} | ✍️ TO FILL | open",
        f"2 | {SECOND} | ✍️ TO FILL | done",
    ]
    assert anchors.get(jira_url) == FIRST
    assert anchors.get(github_url) == SECOND

    # The manager incident page, over HTTP after logging in: the same.
    client = stage.harness.client
    login = login_as(client, WEB_TOKEN, "/login?next=/incidents/INC-0001")
    assert login.status_code == 303  # type: ignore[attr-defined]
    answer = client.get("/incidents/INC-0001")
    assert answer.status_code == 200
    html = answer.text
    seen = shown_text(html)
    assert "Public status page: public (resolved)" in seen
    assert f'href="{public_url}"' in html
    items = re.findall(r'<li class="follow-up (done|open)">(.*?)</li>', html, flags=re.S)
    assert [(state, shown_text(body).split(" · ")[0].strip()) for state, body in items] == [
        ("open", f"#1 [open] {FIRST}"),
        ("done", f"#2 [done] {SECOND}"),
    ]
    assert f'href="{jira_url}"' in items[0][1]
    assert f'href="{github_url}"' in items[1][1]
    assert "· done 2026-11-26 10:06 UTC" in shown_text(items[1][1])
    assert "Post-mortem exported:" in seen
    shown_kinds = re.findall(r"<td>([a-z_]+)</td><td>[^<]*</td><td>", html)
    for kind, count in [
        (sp.PUBLISHED, 2),
        (tickets.TICKET_FILED, 2),
        (tickets.FOLLOWUP_DONE, 1),
        (exports.EXPORTED, 1),
    ]:
        assert shown_kinds.count(kind) == count, (kind, shown_kinds)
    assert f"Filed OPS-1 on `ops` (Jira) for follow-up #1: {jira_url}" in seen
    assert f'href="{exported.data["url"]}"' in html
