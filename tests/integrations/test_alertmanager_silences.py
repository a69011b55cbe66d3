"""Silences from Slack against the real Alertmanager (Debian's prometheus-alertmanager).

Alertmanager fires two alert groups at a real ``warroom serve`` (and at a recorder in this
test, which sees every notification it sends) every couple of seconds. A responder presses
the card's Silence button and confirms the preview (signed Slack requests, the fake Slack
Web API on loopback): Alertmanager shows the silence with our createdBy and comment and
stops notifying for that group while the other group still notifies; Unsilence expires it
and the notifications come back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bot.store.db import sync_url
from tests.alertmanager_process import alertmanager_binary, running_alertmanager
from tests.conftest import LiveServer
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOT_TOKEN
from tests.intake.test_alertmanager_real import free_port
from tests.loopback import Loopback, QuietHandler
from tests.slack.test_e2e import SECRET, Harness
from tests.waiting import wait_for

TOKEN = "am-shared-token"
API_TOKEN = "am-api-token"
REPEAT_S = 2  # Alertmanager's repeat_interval: a firing group is notified this often
SILENCED = "PoolExhausted"
CONTROL = "DiskAlmostFull"


class Recorder:
    """A second webhook receiver of the same Alertmanager route: every notification it sends."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str]] = []  # (monotonic time, alertname, status)
        recorder = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = body.get("groupLabels", {}).get("alertname", "")
                recorder.seen.append((time.monotonic(), name, body.get("status", "")))
                self.send_response(200)
                self.end_headers()

        self.server = Loopback(Handler)
        self.url = f"{self.server.url}/"

    def count(self, name: str) -> int:
        return sum(1 for _, n, status in self.seen if n == name and status == "firing")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def binary() -> str:
    return alertmanager_binary()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as slack:
        yield slack


@pytest.fixture
def stack(
    binary: str, fake: FakeSlack, database_url: str, tmp_path: Path
) -> Iterator[tuple[LiveServer, str, Recorder]]:
    am_port = free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    config = tmp_path / "warroom.yaml"
    config.write_text(
        "server: {public_url: 'https://warroom.example'}\n"
        "webhooks:\n"
        "  am: {source: alertmanager, token_env: T_AM_TOKEN, alertmanager: main}\n"
        "alertmanager:\n"
        f"  main: {{url: '{am_url}', token_env: T_AM_API}}\n"
    )
    warroom = LiveServer(
        database_url,
        tmp_path,
        env={
            "WARROOM_CONFIG": str(config),
            "T_AM_TOKEN": TOKEN,
            "T_AM_API": API_TOKEN,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "WARROOM_SLACK__API_URL": fake.base_url,
        },
    )
    recorder = Recorder()
    am_config = f"""
route:
  receiver: warroom
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {REPEAT_S}s
receivers:
  - name: warroom
    webhook_configs:
      - url: {warroom.url}/webhooks/am
        send_resolved: true
        http_config:
          authorization:
            credentials: {TOKEN}
      - url: {recorder.url}
"""
    try:
        with running_alertmanager(am_config, tmp_path, am_port):
            yield warroom, am_url, recorder
    finally:
        recorder.close()
        warroom.stop()


def fire(am_url: str) -> None:
    alerts = [
        {
            "labels": {"alertname": SILENCED, "service": "db", "instance": "db-primary:5432"},
            "annotations": {"summary": "Connection pool exhausted on db-primary"},
        },
        {
            "labels": {"alertname": CONTROL, "service": "disk", "instance": "fs-1"},
            "annotations": {"summary": "Disk almost full on fs-1"},
        },
    ]
    starts = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    answer = httpx.post(
        f"{am_url}/api/v2/alerts", json=[{**a, "startsAt": starts} for a in alerts], timeout=5
    )
    assert answer.status_code == 200, answer.text


def click(harness: Harness, action: dict[str, Any], channel: str, hook: str) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": ALICE.id},
        "team": {"id": "T0FAKE0001"},
        "channel": {"id": channel},
        "trigger_id": harness.fake.issue_trigger_id(),
        "response_url": harness.fake.response_url(hook),
        "actions": [{"type": "button", "block_id": "b", **action}],
    }
    assert harness.interaction(payload).status_code == 200


def card_button(fake: FakeSlack, channel: str, action_id: str) -> dict[str, Any] | None:
    pins = fake.pins(channel)
    for block in (pins[0].blocks or []) if pins else []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return {"action_id": action_id, "value": element["value"]}
    return None


def silences(am_url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{am_url}/api/v2/silences", timeout=5)
    assert answer.status_code == 200
    return list(answer.json())


def test_a_silence_from_slack_stops_alertmanager_notifying_until_unsilenced(
    stack: tuple[LiveServer, str, Recorder], fake: FakeSlack, database_url: str
) -> None:
    warroom, am_url, recorder = stack
    engine = sa.create_engine(sync_url(database_url))

    def query(text: str, **params: Any) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(text), params)]

    fire(am_url)
    wait_for(
        "both groups notified repeatedly",
        lambda: recorder.count(SILENCED) >= 3 and recorder.count(CONTROL) >= 3,
        seconds=30,
    )

    def pool_incident() -> tuple[str, str] | None:
        for key, channel, title in query("SELECT key, channel_id, title FROM incident"):
            if title.startswith("Connection pool exhausted") and channel:
                return key, channel
        return None

    key, channel = wait_for("the pool incident's channel", pool_incident, seconds=30)
    # httpx.Client posts like the TestClient the Harness was written for.
    client = httpx.Client(base_url=warroom.url, timeout=10)
    harness = Harness(client, fake)  # type: ignore[arg-type]
    silence = wait_for(
        "the card's Silence button", lambda: card_button(fake, channel, "incident.silence"), 30
    )

    # The Silence button shows a preview only to the person who pressed it.
    click(harness, silence, channel, "silence-preview")

    def preview() -> dict[str, Any] | None:
        for response in fake.responses:
            if response["hook"] == "silence-preview" and response.get("blocks"):
                return response
        return None

    shown = wait_for("the silence preview", preview, seconds=15)
    assert shown["response_type"] == "ephemeral"
    text = json.dumps(shown["blocks"], ensure_ascii=False)
    assert f'alertname=\\"{SILENCED}\\"' in text
    assert 'service=\\"db\\"' in text
    assert 'instance=\\"db-primary:5432\\"' in text
    buttons = {
        e["action_id"]: e for b in shown["blocks"] if b["type"] == "actions" for e in b["elements"]
    }
    assert set(buttons) == {
        "silence.confirm.1h",
        "silence.confirm.4h",
        "silence.confirm.until-resolved",
    }
    assert not silences(am_url)  # nothing is created before it is confirmed

    confirm = buttons["silence.confirm.1h"]
    click(harness, {"action_id": confirm["action_id"], "value": confirm["value"]}, channel, "c1")
    click(harness, {"action_id": confirm["action_id"], "value": confirm["value"]}, channel, "c2")

    active = wait_for(
        "the silence in Alertmanager",
        lambda: [s for s in silences(am_url) if s["status"]["state"] == "active"],
        seconds=30,
    )
    assert len(active) == 1  # two clicks, one silence
    (made,) = active
    assert made["createdBy"] == ALICE.id
    assert made["comment"].startswith(f"warroom {key}: Connection pool exhausted")
    assert f"https://warroom.example/incidents/{key}" in made["comment"]
    assert {(m["name"], m["value"], m["isEqual"]) for m in made["matchers"]} == {
        ("alertname", SILENCED, True),
        ("service", "db", True),
        ("instance", "db-primary:5432", True),
    }
    ends = datetime.fromisoformat(made["endsAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=58) < ends - datetime.now(UTC) <= timedelta(hours=1)

    # The id and the expiry are on the timeline and on the pinned card.
    wait_for(
        "the silence on the timeline",
        lambda: query(
            "SELECT e.text FROM timeline_event e JOIN incident i ON i.id = e.incident_id "
            "WHERE i.key = :key AND e.kind = 'silenced'",
            key=key,
        ),
        seconds=15,
    )
    wait_for(
        "the silence on the card",
        lambda: made["id"] in json.dumps(fake.pins(channel)[0].blocks),
        seconds=15,
    )
    assert "Silenced" in json.dumps(fake.pins(channel)[0].blocks)

    # Alertmanager stops notifying the silenced group; the other group still notifies.
    time.sleep(REPEAT_S + 1)  # a notification already under way may still arrive
    silenced_before, control_before = recorder.count(SILENCED), recorder.count(CONTROL)
    time.sleep(REPEAT_S * 4)
    assert recorder.count(SILENCED) == silenced_before, "the silenced group was notified"
    assert recorder.count(CONTROL) >= control_before + 2, "the control group stopped too"

    # Unsilence on the card expires it; the notifications come back.
    unsilence = card_button(fake, channel, "incident.unsilence")
    assert unsilence is not None
    click(harness, unsilence, channel, "unsilence")
    wait_for(
        "the silence to expire",
        lambda: all(s["status"]["state"] == "expired" for s in silences(am_url)),
        seconds=30,
    )
    wait_for(
        "notifications of the unsilenced group",
        lambda: recorder.count(SILENCED) > silenced_before,
        seconds=REPEAT_S * 6,
    )
    kinds = [
        k
        for (k,) in query(
            "SELECT e.kind FROM timeline_event e JOIN incident i ON i.id = e.incident_id "
            "WHERE i.key = :key ORDER BY e.id",
            key=key,
        )
    ]
    assert [k for k in kinds if "silence" in k] == [
        "silence_requested",
        "silenced",
        "unsilence_requested",
        "unsilenced",
    ]
    wait_for(
        "the card without the silence",
        lambda: made["id"] not in json.dumps(fake.pins(channel)[0].blocks),
        seconds=15,
    )
    harness.client.close()
    engine.dispose()
