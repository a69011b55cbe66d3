"""From alert to resolved in three actions, driven the way Slack does, against the fake Slack.

The real Alertmanager capture (``ServiceHighErrorRate`` for ``frontend``) opens the incident;
the user's runbook for it diagnoses a real Postgres database (its own, full of idle
connections a leaky application left open) and grades it red. The responder then:

1. clicks the mitigation the card suggests (which acknowledges the incident),
2. confirms it in the preview (Slack's danger dialog),
3. resolves with the form the record has already written (opened from the card, submitted
   as it came).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from handlers.app import create_app
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOT_TOKEN
from tests.intake.alerts.payloads import raw

from .test_e2e import SECRET, Harness, _fill, incident_channel

LEAKY = "leaky-frontend"
LEAKED = 6

RUNBOOK = """
id: frontend-errors
title: Frontend errors from an exhausted connection pool
match: {alerts: [ServiceHighErrorRate]}
diagnostics:
  - id: idle_connections
    title: Idle connections the frontend left open
    kind: postgres
    target: main
    params:
      minutes: {type: int, default: 0, min: 0, max: 1440}
    sql: |
      SELECT pid, application_name, state FROM pg_stat_activity
      WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid()
        AND application_name = 'leaky-frontend'
        AND state_change < now() - make_interval(mins => %(minutes)s::int)
    thresholds:
      - {metric: rows, label: idle connections, green: "< 2", red: "> 4"}
mitigations:
  - id: terminate_idle
    title: Terminate the idle connections
    kind: postgres
    target: main
    preview: idle_connections
    suggested_by:
      - {diagnostic: idle_connections, grades: [yellow, red]}
    allowed: {roles: [commander]}
    params:
      minutes: {type: int, default: 0, min: 0, max: 1440}
    sql: |
      SELECT pid, pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
      WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid()
        AND application_name = 'leaky-frontend'
        AND state_change < now() - make_interval(mins => %(minutes)s::int)
"""


@pytest.fixture
def harness(
    database_url: str, target_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    book = tmp_path / "frontend-errors.yaml"
    book.write_text(RUNBOOK)
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("APP_DSN", target_dsn)
        monkeypatch.setenv("WARROOM_RUNBOOKS__PATHS", json.dumps([str(book)]))
        monkeypatch.setenv(
            "WARROOM_RUNBOOKS__TARGETS__POSTGRES", '{"main": {"dsn_env": "APP_DSN"}}'
        )
        # Alice is on call for the frontend: she may run its mitigation without a role.
        grant = {"frontend-errors.terminate_idle": {"users": [ALICE.id]}}
        monkeypatch.setenv("WARROOM_RUNBOOKS__GRANTS", json.dumps(grant))
        with TestClient(create_app(load_settings())) as client:
            yield Harness(client, fake)
        fake.assert_clean()


def _buttons(message: Any, block_id: str | None = None) -> list[dict[str, Any]]:
    return [
        element
        for block in message.blocks
        if block["type"] == "actions" and (block_id is None or block.get("block_id") == block_id)
        for element in block["elements"]
    ]


def _click(fake: FakeSlack, channel: str, message: Any, button: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": ALICE.id},
        "team": {"id": "T0FAKE0001"},
        "trigger_id": fake.issue_trigger_id(ALICE.id),
        "response_url": fake.response_url(f"click-{button['action_id']}"),
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": message.ts},
        "message": {"ts": message.ts, "blocks": message.blocks},
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "x",
                "value": button["value"],
                "type": "button",
            }
        ],
    }


def test_alert_to_resolved_in_three_actions(harness: Harness, target_dsn: str) -> None:
    fake = harness.fake
    leaked = [psycopg.connect(target_dsn, application_name=LEAKY) for _ in range(LEAKED)]
    actions = 0
    try:
        answer = harness.client.post(
            "/webhooks/alertmanager",
            content=raw("alertmanager/firing_capture_am0.27.0.wire.json"),
            headers={"content-type": "application/json"},
        )
        assert answer.json()["opened"] == ["INC-0001"]
        channel = harness.wait(
            "the channel", lambda: incident_channel(fake, "-0001-frontend-error-rate-above-5")
        ).id

        # The automatic diagnostics grade the leak red; the card offers the mitigation.
        card = harness.wait(
            "the card's suggested mitigation",
            lambda: next(
                (m for m in fake.pins(channel) if _buttons(m, "incident.next_steps")), None
            ),
            seconds=30,
        )
        card_ts = card.ts
        shown = json.dumps(card.blocks)
        assert "Next step" in shown
        assert f"idle connections = {LEAKED} (red: &gt; 4)" in shown
        (suggested,) = _buttons(card, "incident.next_steps")
        assert suggested["text"]["text"] == "Run Terminate the idle connections"
        assert harness.incident()["acknowledged_at"] is None

        # 1. The suggested mitigation: its preview, with the same Confirm as /incident run.
        assert harness.interaction(_click(fake, channel, card, suggested)).status_code == 200
        actions += 1
        preview = harness.wait(
            "the preview",
            lambda: [m for m in fake.messages(channel) if _buttons(m) and "requested by" in m.text],
        )[-1]
        assert "Terminate the idle connections" in preview.text
        assert LEAKY in json.dumps(preview.blocks)  # what it would touch
        (confirm,) = [b for b in _buttons(preview) if b["action_id"] == "runbook.confirm"]
        assert confirm["confirm"]["style"] == "danger"
        assert harness.incident()["acknowledged_by"] == ALICE.id
        harness.wait(
            "the card to show the acknowledgement",
            lambda: (
                f"*Acknowledged*\\nby <@{ALICE.id}>" in json.dumps(fake.pins(channel)[0].blocks)
            ),
        )
        assert not [b for b in _buttons(fake.pins(channel)[0]) if b["action_id"] == "incident.ack"]

        # 2. Confirm: the mitigation runs against the real database.
        assert harness.interaction(_click(fake, channel, preview, confirm)).status_code == 200
        actions += 1
        harness.wait(
            "the mitigation's result",
            lambda: [m for m in fake.messages(channel) if "terminate_idle` on main" in m.text],
            seconds=30,
        )
        with psycopg.connect(target_dsn) as check:
            left = check.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (LEAKY,)
            ).fetchone()
        assert left == (0,)
        card = harness.wait(
            "the card without the suggestion once it ran",
            lambda: next(
                (m for m in fake.pins(channel) if not _buttons(m, "incident.next_steps")), None
            ),
        )

        # 3. Resolve: the form comes prefilled from the record; it is submitted as it came.
        (resolve,) = [b for b in _buttons(card) if b["action_id"] == "incident.resolve"]
        assert harness.interaction(_click(fake, channel, card, resolve)).status_code == 200
        view = harness.wait("the resolve modal", lambda: fake.views)[-1]
        fields = {
            b["block_id"]: b["element"].get("initial_value")
            for b in view.body["blocks"]
            if b["type"] == "input"
        }
        assert fields["summary"] == "frontend error rate above 5%"
        assert fields["root_cause"] == f"idle connections {LEAKED} > 4 on main"
        assert fields["resolution"].startswith(
            "Ran frontend-errors/terminate_idle (minutes=0) on main"
        )
        state = {"values": _fill(view.body, {})}
        submitted = harness.interaction(
            {
                "type": "view_submission",
                "team": {"id": "T0FAKE0001"},
                "user": {"id": ALICE.id},
                "view": {**view.body, "id": view.id, "state": state},
            }
        )
        assert submitted.status_code == 200
        actions += 1
        resolved = harness.wait(
            "the resolution",
            lambda: harness.incident()["status"] == "resolved" and harness.incident(),
        )
        assert actions <= 3
    finally:
        for conn in leaked:
            conn.close()

    assert resolved["root_cause"] == f"idle connections {LEAKED} > 4 on main"
    timeline = resolved["timeline"]
    acks = [e for e in timeline if e["kind"] == "acknowledged"]
    assert len(acks) == 1
    assert acks[0]["actor"] == ALICE.id
    assert "requested a mitigation" in acks[0]["text"]
    runs = [e["text"] for e in timeline if e["kind"] == "step_run"]
    assert any(t.startswith("diagnostic frontend-errors/idle_connections") for t in runs)
    assert any(t.startswith("mitigation frontend-errors/terminate_idle") for t in runs)
    assert "resolved" in [e["kind"] for e in timeline]

    # The card was edited in place all along: one card, pinned once, never re-posted.
    harness.wait(
        "the card to show resolved",
        lambda: "Reopen" in json.dumps(fake.pins(channel)[0].blocks),
    )
    assert [m.ts for m in fake.pins(channel)] == [card_ts]

    # The post-mortem draft holds the diagnostics, the mitigation and the root cause.
    harness.command("postmortem", channel=channel)
    (record,) = harness.wait(
        "the post-mortem file",
        lambda: [f for f in fake.workspace.files.values() if f.completed and f.shares],
    )
    text = (record.content or b"").decode()
    assert "🔴 red · frontend-errors / idle\\_connections" in text
    assert "info · frontend-errors / terminate\\_idle" in text
    root_cause = text.split("## Root cause", 1)[1].split("##", 1)[0]
    assert root_cause.strip() == f"idle connections {LEAKED} &gt; 4 on main"
    assert "- Resolution: Ran frontend-errors/terminate\\_idle" in text
