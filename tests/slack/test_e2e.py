"""End to end on loopback: an alert → channel, card, messages → signed commands and modals.

The fake Slack Web API runs on a real port; warroom runs its real ASGI app with Bolt;
every inbound Slack request is signed here, by this file's own HMAC code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from handlers.app import create_app
from tests.data import SLACK_DIR
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOB, BOT_TOKEN
from tests.intake.alerts.payloads import raw
from tests.waiting import wait_for

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's published test secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def test_signing_code_matches_slacks_test_vector() -> None:
    body = (SLACK_DIR / "signing_vector_body.txt").read_bytes().rstrip(b"\n")
    assert sign(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


class Harness:
    def __init__(self, client: TestClient, fake: FakeSlack) -> None:
        self.client = client
        self.fake = fake

    def signed(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str,
        stamp: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> Any:
        timestamp = str(stamp if stamp is not None else int(time.time()))
        return self.client.post(
            path,
            content=body,
            headers={
                "content-type": content_type,
                "x-slack-request-timestamp": timestamp,
                "x-slack-signature": sign(secret, timestamp, body),
                **(headers or {}),
            },
        )

    def command(self, text: str, *, channel: str, user: str = ALICE.id) -> Any:
        form = {
            "token": "legacy",
            "team_id": "T0FAKE0001",
            "channel_id": channel,
            "user_id": user,
            "command": "/incident",
            "text": text,
            "response_url": self.fake.response_url(f"cmd-{len(self.fake.responses)}"),
            "trigger_id": self.fake.issue_trigger_id(user),
        }
        return self.signed(
            "/slack/events",
            urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
        )

    def interaction(self, payload: dict[str, Any]) -> Any:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.signed("/slack/events", body, content_type="application/x-www-form-urlencoded")

    def event(self, event: dict[str, Any], event_id: str, retry: int | None = None) -> Any:
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0FAKE0001",
                "type": "event_callback",
                "event_id": event_id,
                "event_time": int(time.time()),
                "event": event,
            }
        ).encode()
        headers = {"x-slack-retry-num": str(retry)} if retry else None
        return self.signed("/slack/events", body, content_type="application/json", headers=headers)

    def wait(self, what: str, check: Any, seconds: float = 15) -> Any:
        return wait_for(what, check, seconds)

    def incident(self, key: str = "INC-0001") -> dict[str, Any]:
        from click.testing import CliRunner

        from handlers.cli import cli

        result = CliRunner().invoke(cli, ["incident", "show", key, "--json"])
        return json.loads(result.output)


@pytest.fixture
def harness(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        incidents_channel = fake.channel_by_name("incidents").id
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("WARROOM_SLACK__BROADCAST_CHANNEL", incidents_channel)
        monkeypatch.setenv(
            "WARROOM_SLACK__ROUTING",
            json.dumps(
                [{"severities": ["P1", "P2"], "users": [BOB.id], "emails": ["carol@example.com"]}]
            ),
        )
        with TestClient(create_app(load_settings())) as client:
            yield Harness(client, fake)
        fake.assert_clean()


def test_alert_to_channel_to_commands_to_resolution(harness: Harness) -> None:
    fake = harness.fake
    answer = harness.client.post(
        "/webhooks/alertmanager",
        content=raw("alertmanager/firing_capture_am0.27.0.wire.json"),
        headers={"content-type": "application/json"},
    )
    assert answer.json()["opened"] == ["INC-0001"]

    suffix = "-0001-frontend-error-rate-above-5"
    channel = harness.wait("the channel", lambda: incident_channel(fake, suffix))
    harness.wait("the card to be pinned", lambda: fake.pins(channel.id))
    assert set(fake.members(channel.id)) >= {BOB.id, "U0CAROL001"}
    assert channel.topic["value"].startswith("INC-0001 · P1 · investigating")
    (card,) = fake.pins(channel.id)
    assert "INC-0001" in json.dumps(card.blocks)
    harness.wait(
        "the initial message",
        lambda: any(
            m.text.startswith("INCIDENT: frontend error rate above 5%")
            for m in fake.messages(channel.id)
        ),
    )
    harness.wait(
        "the announcement",
        lambda: any(
            f"<#{channel.id}>" in m.text
            for m in fake.messages(fake.channel_by_name("incidents").id)
        ),
    )
    assert [b["title"] for b in fake.bookmarks(channel.id)] == ["Alert source"]

    acked = harness.command("ack", channel=channel.id)
    assert acked.status_code == 200
    harness.wait(
        "the ack reply", lambda: any("acknowledged" in r.get("text", "") for r in fake.responses)
    )
    harness.command("sev P2", channel=channel.id)
    harness.wait("the card edit", lambda: "P2" in json.dumps(fake.pins(channel.id)[0].blocks))

    harness.command("update", channel=channel.id)
    view = harness.wait("the update modal", lambda: fake.views)[-1]
    state = {
        "values": _fill(
            view.body,
            {
                "status": "mitigating",
                "progress": "rolled back 4.2",
                "impact": "5% of checkouts fail",
                "eta": "30 min",
            },
        )
    }
    submitted = harness.interaction(
        {
            "type": "view_submission",
            "team": {"id": "T0FAKE0001"},
            "user": {"id": ALICE.id},
            "view": {**view.body, "id": view.id, "state": state},
        }
    )
    assert submitted.status_code == 200
    update = harness.wait(
        "the update message",
        lambda: [m for m in fake.messages(channel.id) if m.text.startswith("INCIDENT UPDATE")],
    )
    assert "Progress: rolled back 4.2" in update[0].text

    harness.command("resolve Rolled back the bad deploy", channel=channel.id)
    harness.wait(
        "the resolution message",
        lambda: any(m.text.startswith("INCIDENT RESOLVED") for m in fake.messages(channel.id)),
    )
    harness.wait(
        "the card to show resolved",
        lambda: "resolved" in json.dumps(fake.pins(channel.id)[0].blocks).lower(),
    )

    shown = harness.incident()
    kinds = [e["kind"] for e in shown["timeline"]]
    for kind in (
        "declared",
        "alert",
        "channel",
        "acknowledged",
        "severity",
        "status",
        "update",
        "resolved",
    ):
        assert kind in kinds, kind
    assert shown["status"] == "resolved"
    assert fake.calls_by_method["conversations.create"] == 1
    assert fake.calls_by_method["chat.update"] >= 2


def test_bad_signature_and_stale_timestamp_are_401(harness: Harness) -> None:
    body = urlencode({"command": "/incident", "text": "list", "user_id": ALICE.id}).encode()
    wrong = harness.signed(
        "/slack/events",
        body,
        secret="not-the-secret",
        content_type="application/x-www-form-urlencoded",
    )
    assert wrong.status_code == 401
    stale = harness.signed(
        "/slack/events",
        body,
        stamp=int(time.time()) - 600,
        content_type="application/x-www-form-urlencoded",
    )
    assert stale.status_code == 401


def test_url_verification(harness: Harness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"}).encode()
    answer = harness.signed("/slack/events", body, content_type="application/json")
    assert answer.status_code == 200
    assert "c-123" in answer.text


def test_unknown_subcommand_gets_usage_and_changes_nothing(harness: Harness) -> None:
    answer = harness.command("acknowlege INC-1", channel="C0NOPE")
    assert answer.status_code == 200
    reply = harness.wait("the usage reply", lambda: harness.fake.responses)[-1]
    assert reply["response_type"] == "ephemeral"
    assert "ack" in reply["text"]
    assert "Traceback" not in json.dumps(reply)


def test_pushpin_reaction_goes_on_the_timeline_once(harness: Harness) -> None:
    fake = harness.fake
    harness.command('declare "Cache failure" sev:P2', channel=fake.channel_by_name("general").id)
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-0001-cache-failure")).id
    harness.wait("the card", lambda: fake.pins(channel))
    message = fake.post_as_user(channel, ALICE.id, "redis maxmemory is 0: eviction off")
    event = {
        "type": "reaction_added",
        "user": BOB.id,
        "reaction": "pushpin",
        "item": {"type": "message", "channel": channel, "ts": message.ts},
    }
    assert harness.event(event, "Ev001").status_code == 200
    assert harness.event(event, "Ev001", retry=1).status_code == 200  # Slack's retry
    shown = harness.wait(
        "the pinned note",
        lambda: [e for e in harness.incident()["timeline"] if e["kind"] == "pinned"],
    )
    assert len(shown) == 1
    assert "eviction off" in shown[0]["text"]


def incident_channel(fake: FakeSlack, suffix: str) -> Any:
    for channel in fake.workspace.channels.values():
        if channel.name.startswith("inc-") and channel.name.endswith(suffix):
            return channel
    return None


def _fill(view: dict[str, Any], wanted: dict[str, str]) -> dict[str, Any]:
    """Slack's view.state.values for ``view`` with the given answers (by block_id)."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block.get("type") != "input":
            continue
        element = block["element"]
        answer = wanted.get(block["block_id"])
        if element["type"] == "static_select":
            chosen = next(
                (o for o in element["options"] if o["value"] == answer),
                element.get("initial_option"),
            )
            state = {"type": "static_select", "selected_option": chosen}
        elif element["type"] == "checkboxes":
            state = {"type": "checkboxes", "selected_options": []}
        else:
            state = {"type": element["type"], "value": answer or element.get("initial_value")}
        values[block["block_id"]] = {element["action_id"]: state}
    return values


def test_joins_are_recorded(harness: Harness) -> None:
    fake = harness.fake
    harness.command("declare Disk full sev:P3", channel=fake.channel_by_name("general").id)
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-0001-disk-full")).id
    # A responder joins a channel they were shown; the card is posted once the channel is on
    # the incident (Slack's create answers a moment before warroom has stored it).
    harness.wait("the card", lambda: fake.pins(channel))
    joined = {"type": "member_joined_channel", "user": BOB.id, "channel": channel}
    assert harness.event(joined, "EvJoin1").status_code == 200
    events = harness.wait(
        "the join", lambda: [e for e in harness.incident()["timeline"] if e["kind"] == "joined"]
    )
    assert events[0]["actor"] == BOB.id


def test_postmortem_is_posted_as_a_markdown_file(harness: Harness) -> None:
    fake = harness.fake
    harness.command("declare Queue backlog sev:P2", channel=fake.channel_by_name("general").id)
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-0001-queue-backlog")).id
    harness.wait("the card", lambda: fake.pins(channel))
    harness.command("resolve consumers were scaled back up", channel=channel)
    harness.wait("the resolution", lambda: harness.incident()["status"] == "resolved")
    harness.command("postmortem", channel=channel)
    shared = harness.wait(
        "the file", lambda: [f for f in fake.workspace.files.values() if f.completed and f.shares]
    )
    (record,) = shared
    assert record.name == "INC-0001-postmortem.md"
    text = (record.content or b"").decode()
    assert text.startswith("# Post-mortem: INC-0001")
    assert "DRAFT" in text
    assert record.shares[0][0] == channel
