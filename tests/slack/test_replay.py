"""Hostile and repeated Slack requests, signed here and sent into warroom's real app.

A request with missing or malformed signature headers is 401, never 500. A validly signed
request sent again (a replay within the 5-minute window, or Slack's retry of it) is answered
200 and acted on once, also when the second copy reaches another replica.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import sqlalchemy as sa
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.store.db import sync_url
from handlers.app import create_app
from tests.conftest import REDIS_URL, service_missing
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOB, BOT_TOKEN, TEAM_ID
from tests.slack.test_e2e import SECRET, Harness, incident_channel, sign


@pytest.fixture
def fake(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as served:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")) or var == "REDIS_URL":
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", served.base_url)
        monkeypatch.setenv(
            "WARROOM_SLACK__BROADCAST_CHANNEL", served.channel_by_name("incidents").id
        )
        yield served
        served.assert_clean()


@pytest.fixture
def harness(fake: FakeSlack) -> Iterator[Harness]:
    with TestClient(create_app(load_settings())) as client:
        yield Harness(client, fake)


class Request:
    """One signed request, kept so that exactly the same bytes can be sent again."""

    def __init__(self, body: bytes, content_type: str, *, stamp: int | None = None) -> None:
        self.body = body
        self.stamp = str(stamp if stamp is not None else int(time.time()))
        self.headers = {
            "content-type": content_type,
            "x-slack-request-timestamp": self.stamp,
            "x-slack-signature": sign(SECRET, self.stamp, body),
        }

    def send(self, client: TestClient, **extra: str) -> Any:
        return client.post("/slack/events", content=self.body, headers={**self.headers, **extra})


def command(fake: FakeSlack, text: str, channel: str, *, trigger: str | None = None) -> Request:
    form = {
        "token": "legacy",
        "team_id": TEAM_ID,
        "channel_id": channel,
        "user_id": ALICE.id,
        "command": "/incident",
        "text": text,
        "response_url": fake.response_url(f"r-{uuid.uuid4().hex[:6]}"),
        "trigger_id": trigger or fake.issue_trigger_id(ALICE.id),
    }
    return Request(urlencode(form).encode(), "application/x-www-form-urlencoded")


def declared(harness: Harness, title: str) -> str:
    """Declare an incident by a slash command; its channel id once the card is pinned."""
    fake = harness.fake
    harness.command(f"declare {title} sev:P2", channel=fake.channel_by_name("general").id)
    suffix = "-0001-" + title.lower().replace(" ", "-")
    channel = harness.wait("the channel", lambda: incident_channel(fake, suffix)).id
    harness.wait("the card", lambda: fake.pins(channel))
    return str(channel)


def notes(harness: Harness, text: str) -> list[dict[str, Any]]:
    return [e for e in harness.incident()["timeline"] if e["kind"] == "note" and text in e["text"]]


# -- hostile headers --------------------------------------------------------------------------


def test_missing_or_malformed_signature_headers_are_401_never_500(harness: Harness) -> None:
    body = urlencode({"command": "/incident", "text": "list", "user_id": ALICE.id}).encode()
    now = str(int(time.time()))
    good = sign(SECRET, now, body)
    cases: dict[str, dict[str, str | bytes]] = {
        "non-numeric timestamp": {"x-slack-request-timestamp": "soon", "x-slack-signature": good},
        "empty timestamp": {"x-slack-request-timestamp": "", "x-slack-signature": good},
        "float timestamp": {"x-slack-request-timestamp": now + ".5", "x-slack-signature": good},
        "negative timestamp": {"x-slack-request-timestamp": "-" + now, "x-slack-signature": good},
        "padded timestamp": {"x-slack-request-timestamp": f" {now} ", "x-slack-signature": good},
        "non-ASCII digits": {
            "x-slack-request-timestamp": "١٧٠٠٠٠٠٠٠٠".encode(),
            "x-slack-signature": good,
        },
        "huge timestamp": {"x-slack-request-timestamp": "9" * 400, "x-slack-signature": good},
        "no timestamp": {"x-slack-signature": good},
        "no signature": {"x-slack-request-timestamp": now},
        "no headers at all": {},
        "garbage signature": {"x-slack-request-timestamp": now, "x-slack-signature": "garbage"},
        "empty signature": {"x-slack-request-timestamp": now, "x-slack-signature": ""},
        "short signature": {"x-slack-request-timestamp": now, "x-slack-signature": good[:-2]},
        "v1 signature": {"x-slack-request-timestamp": now, "x-slack-signature": "v1" + good[2:]},
        "another body's signature": {
            "x-slack-request-timestamp": now,
            "x-slack-signature": sign(SECRET, now, body + b"&x=1"),
        },
    }
    for name, headers in cases.items():
        answer = harness.client.post(
            "/slack/events",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded", **headers},
        )
        assert answer.status_code == 401, name
        assert answer.json() == {"error": "invalid request"}, name
    unsigned_binary = harness.client.post(
        "/slack/events",
        content=b"\xff\xfe\x00garbage",
        headers={"content-type": "application/json", "x-slack-request-timestamp": "x"},
    )
    assert unsigned_binary.status_code == 401
    assert harness.fake.responses == []  # nothing ran


def test_signed_but_unreadable_bodies_are_4xx_not_500(harness: Harness) -> None:
    for body, content_type in (
        (b"\xff\xfe not utf-8", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b"payload=%7Bnot+json", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'"text"', "application/json"),
        (b'{"type": "event_callback", "event": "x"}', "application/json"),
        (b'{"type": "event_callback", "event": {"type": "reaction_added"}}', "application/json"),
        (b'payload={"type": "block_actions", "actions": "x"}', "application/x-www-form-urlencoded"),
        (b"payload=[]", "application/x-www-form-urlencoded"),
        (b"command=/incident", "application/x-www-form-urlencoded"),
    ):
        answer = Request(body, content_type).send(harness.client)
        assert answer.status_code < 500, (body, answer.status_code, answer.text)


# -- replays and retries ----------------------------------------------------------------------


def test_a_replayed_signed_slash_command_acts_once(harness: Harness) -> None:
    channel = declared(harness, "Replay target")
    note = command(harness.fake, "note pool back under 80%", channel)
    first = note.send(harness.client)
    assert first.status_code == 200
    harness.wait("the note", lambda: notes(harness, "pool back under 80%"))
    again = note.send(harness.client)  # the same signed bytes, well within 5 minutes
    assert again.status_code == 200
    assert again.content == b""  # an empty ack: nothing to show, nothing done
    # Slack's own redelivery: signed anew, same trigger id.
    form = dict(part.split("=", 1) for part in note.body.decode().split("&"))
    trigger = form["trigger_id"]
    resent = command(harness.fake, "note pool back under 80%", channel, trigger=trigger)
    assert resent.send(harness.client, **{"x-slack-retry-num": "1"}).status_code == 200
    time.sleep(1.0)  # time for a second note to show up, if it were written
    assert len(notes(harness, "pool back under 80%")) == 1
    # A new command with the same text is a new request: it is acted on.
    assert (
        command(harness.fake, "note pool back under 80%", channel).send(harness.client).status_code
        == 200
    )
    harness.wait("the second note", lambda: len(notes(harness, "pool back under 80%")) == 2)


def test_a_redelivered_declaration_opens_one_incident(harness: Harness) -> None:
    general = harness.fake.channel_by_name("general").id
    declare = command(harness.fake, 'declare "Checkout down" sev:P1', general)
    assert declare.send(harness.client).status_code == 200
    assert declare.send(harness.client).status_code == 200
    harness.wait("the channel", lambda: incident_channel(harness.fake, "-0001-checkout-down"))
    time.sleep(1.0)
    listed = [c for c in harness.fake.workspace.channels.values() if c.name.startswith("inc-")]
    assert len(listed) == 1


def _event(channel: str, ts: str, event_id: str) -> bytes:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": {
                "type": "reaction_added",
                "user": BOB.id,
                "reaction": "pushpin",
                "item": {"type": "message", "channel": channel, "ts": ts},
            },
        }
    ).encode()


def test_a_replayed_event_acts_once(harness: Harness) -> None:
    channel = declared(harness, "Event replay")
    message = harness.fake.post_as_user(channel, ALICE.id, "the queue drains again")
    event = Request(_event(channel, message.ts, f"Ev{uuid.uuid4().hex[:8]}"), "application/json")
    assert event.send(harness.client).status_code == 200
    assert event.send(harness.client).status_code == 200  # the same bytes again
    assert event.send(harness.client, **{"x-slack-retry-num": "2"}).status_code == 200

    def pinned() -> list[dict[str, Any]]:
        return [e for e in harness.incident()["timeline"] if e["kind"] == "pinned"]

    harness.wait("the pinned note", pinned)
    time.sleep(1.0)
    assert len(pinned()) == 1


def test_a_replayed_click_acts_once(harness: Harness) -> None:
    channel = declared(harness, "Click replay")
    click = {
        "type": "block_actions",
        "user": {"id": ALICE.id},
        "team": {"id": TEAM_ID},
        "trigger_id": harness.fake.issue_trigger_id(),
        "response_url": harness.fake.response_url("click"),
        "channel": {"id": channel},
        "actions": [
            {
                "action_id": "incident.snooze",
                "value": "INC-0001|30",
                "type": "button",
                "block_id": "b",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(click)}).encode()
    request = Request(body, "application/x-www-form-urlencoded")
    assert request.send(harness.client).status_code == 200
    assert request.send(harness.client).status_code == 200

    def snoozed() -> list[dict[str, Any]]:
        return [r for r in harness.fake.responses if "snoozed for 30 min" in r.get("text", "")]

    harness.wait("the snooze reply", snoozed)
    time.sleep(1.0)
    assert len(snoozed()) == 1


# -- replicas ---------------------------------------------------------------------------------


def _replay_rows(database_url: str) -> int:
    engine = sa.create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM replay_key")).scalar_one())
    finally:
        engine.dispose()


def _two_replicas_act_once(fake: FakeSlack) -> None:
    with (
        TestClient(create_app(load_settings())) as one,
        TestClient(create_app(load_settings())) as two,
    ):
        harness = Harness(one, fake)
        channel = declared(harness, "Two replicas")
        note = command(fake, "note failover finished", channel)
        assert note.send(one).status_code == 200
        harness.wait("the note", lambda: notes(harness, "failover finished"))
        answer = note.send(two)  # the same request, load-balanced to the other replica
        assert answer.status_code == 200
        assert answer.content == b""
        other = command(fake, "note second replica works", channel)
        assert other.send(two).status_code == 200
        harness.wait("the other replica's note", lambda: notes(harness, "second replica works"))
        assert other.send(one).status_code == 200
        time.sleep(1.0)
        assert len(notes(harness, "failover finished")) == 1
        assert len(notes(harness, "second replica works")) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_replicas_on_one_postgres_see_each_others_requests(
    fake: FakeSlack, database_url: str
) -> None:
    _two_replicas_act_once(fake)
    assert _replay_rows(database_url) > 0  # remembered in the shared database


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_replicas_share_requests_through_redis(
    fake: FakeSlack, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(f"Redis at {REDIS_URL} ({error})", "Start it or set WARROOM_TEST_REDIS.")
    # The fake issues the same trigger ids in every run: forget the marks of earlier runs.
    shared = redis.Redis.from_url(REDIS_URL)
    for key in shared.scan_iter("warroom:replay:slack:*"):
        shared.delete(key)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    _two_replicas_act_once(fake)
    assert _replay_rows(database_url) == 0  # Redis answered: the database was not needed
    assert list(shared.scan_iter("warroom:replay:slack:*"))
