"""The status page from Slack, driven the way Slack does (signed commands and clicks) against
the fake Slack and the Statuspage stand-in, through the real app (``create_app``).

A commander declares an incident whose title is hostile; ``/incident statuspage open`` shows
only them the exact public text, escaped; Publish opens one status incident whose link comes
back in the channel, on the card and on the manager page; someone without the role is told who
may publish. Resolving the incident publishes nothing: the channel and the card offer the
resolution, whose own preview and Publish resolve the status incident.

For other tests: :func:`statuspage_env` sets the variables one target needs, :func:`preview`
sends a command and returns the ephemeral preview, :func:`press` clicks its Publish button.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from handlers.app import create_app
from handlers.slack.blocks.statuspage import STATUSPAGE_CONFIRM, STATUSPAGE_RESOLVE
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOB, BOT_TOKEN
from tests.fakes.statuspage import FakeStatuspage
from tests.web.forms import login_as

from .test_e2e import SECRET, Harness

API_KEY = "sp-slack-test-key"
PAGE = "pg0slack0001"
CHECKOUT = "cmp0checkout"
WEB_TOKEN = "w" * 32
HOSTILE = "<!channel> Checkout *down* <https://evil.example|click> & `rm`"


def statuspage_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("T_STATUSPAGE", API_KEY)
    target = {
        "url": url,
        "page_id": PAGE,
        "api_key_env": "T_STATUSPAGE",
        "components": {"checkout": [CHECKOUT]},
        "allowed": {"roles": ["commander"]},
    }
    monkeypatch.setenv("WARROOM_STATUSPAGE", json.dumps({"public": target}))


@pytest.fixture
def statuspage() -> Iterator[FakeStatuspage]:
    with FakeStatuspage({API_KEY}, {PAGE: {CHECKOUT: "Checkout"}}) as fake:
        yield fake


@pytest.fixture
def harness(
    database_url: str, monkeypatch: pytest.MonkeyPatch, statuspage: FakeStatuspage
) -> Iterator[Harness]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("WARROOM_WEB__TOKEN", WEB_TOKEN)
        statuspage_env(monkeypatch, statuspage.url)
        with TestClient(create_app(load_settings()), follow_redirects=False) as client:
            yield Harness(client, fake)
        fake.assert_clean()


def preview(harness: Harness, text: str, channel: str, user: str = ALICE.id) -> dict[str, Any]:
    """Send ``/incident <text>`` and return the ephemeral answer it gets."""
    before = len(harness.fake.responses)
    assert harness.command(text, channel=channel, user=user).status_code == 200
    return harness.wait(  # type: ignore[no-any-return]
        "the ephemeral answer",
        lambda: harness.fake.responses[before:] and harness.fake.responses[-1],
    )


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def press(harness: Harness, channel: str, button: dict[str, Any], user: str = ALICE.id) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0FAKE0001"},
        "channel": {"id": channel},
        "trigger_id": harness.fake.issue_trigger_id(user),
        "response_url": harness.fake.response_url(f"click-{len(harness.fake.responses)}"),
        "actions": [
            {
                "type": "button",
                "block_id": "b",
                "action_id": button["action_id"],
                "value": button["value"],
            }
        ],
    }
    assert harness.interaction(payload).status_code == 200


def first_incident_channel(fake: FakeSlack) -> Any:
    return next((c for c in fake.workspace.channels.values() if "-0001-" in c.name), None)


def card_buttons(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    pins = fake.pins(channel)
    return buttons(pins[0].blocks or []) if pins else []


def test_preview_then_publish_from_slack_and_the_resolution_offered(
    harness: Harness, statuspage: FakeStatuspage
) -> None:
    fake = harness.fake
    declared = harness.command(
        f"declare {HOSTILE} sev:P1 service:checkout lead:<@{ALICE.id}>",
        channel=fake.channel_by_name("general").id,
    )
    assert declared.status_code == 200
    channel = harness.wait("the channel", lambda: first_incident_channel(fake)).id
    harness.wait("the card", lambda: card_buttons(fake, channel))
    assert "Status page" in [b["text"]["text"] for b in card_buttons(fake, channel)]

    shown = preview(harness, "statuspage open", channel)
    blocks = shown["blocks"]
    rendered = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in rendered  # the hostile title is shown, never acted on
    assert "&lt;!channel&gt;" in rendered
    assert "<https://evil.example|click>" not in rendered
    assert "INCIDENT: " in blocks[1]["text"]["text"]
    assert "Severity: P1" in blocks[1]["text"]["text"]
    assert f"`{CHECKOUT}` → major outage" in rendered
    assert statuspage.requests == []  # a preview publishes nothing

    # Someone without the commander role is told who may publish, and nothing changes.
    refused = preview(harness, "statuspage open", channel, user=BOB.id)
    assert "You may not publish to the status page `public`" in refused["text"]
    assert "incident roles commander" in refused["text"]

    (publish,) = [b for b in buttons(blocks) if b["action_id"] == STATUSPAGE_CONFIRM]
    press(harness, channel, publish)
    incident = harness.wait("the status incident", lambda: statuspage.of(PAGE, "INC-0001"))[0]
    assert incident["name"].startswith("<!channel> Checkout")  # the public page gets the title
    assert incident["incident_updates"][0]["body"].startswith("INCIDENT: <!channel> Checkout")
    link = incident["shortlink"]
    harness.wait(
        "the link in the channel", lambda: any(link in m.text for m in fake.messages(channel))
    )
    harness.wait("the link on the card", lambda: link in json.dumps(fake.pins(channel)[0].blocks))
    press(harness, channel, publish)  # the same preview again: published once
    assert login_as(harness.client, WEB_TOKEN).status_code == 303  # type: ignore[attr-defined]
    page = harness.client.get("/incidents/INC-0001")
    assert f'href="{link}"' in page.text
    assert "Public status page" in page.text

    harness.command("resolve Rolled back the bad deploy", channel=channel)
    harness.wait(
        "the offer in the channel",
        lambda: any("Resolve status page" in m.text for m in fake.messages(channel)),
    )
    offer = harness.wait(
        "the card's offer",
        lambda: [b for b in card_buttons(fake, channel) if b["action_id"] == STATUSPAGE_RESOLVE],
    )[0]
    assert statuspage.of(PAGE, "INC-0001")[0]["status"] == "investigating"  # not auto-published
    before = len(fake.responses)
    press(harness, channel, offer)
    closing = harness.wait("the resolution preview", lambda: fake.responses[before:])[-1]
    assert "INCIDENT RESOLVED" in json.dumps(closing["blocks"])
    (confirm,) = [b for b in buttons(closing["blocks"]) if b["action_id"] == STATUSPAGE_CONFIRM]
    press(harness, channel, confirm)
    harness.wait(
        "the status incident resolved",
        lambda: statuspage.of(PAGE, "INC-0001")[0]["status"] == "resolved",
    )
    assert statuspage.component_status(PAGE, CHECKOUT) == "operational"
    assert len(statuspage.of(PAGE, "INC-0001")) == 1
    assert len(statuspage.of(PAGE, "INC-0001")[0]["incident_updates"]) == 2
