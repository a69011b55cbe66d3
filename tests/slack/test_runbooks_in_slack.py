"""Runbooks through Slack: auto-diagnostics on open, a refused stranger, a confirmed mitigation."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import psycopg
import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from handlers.app import create_app
from tests.fakes.slack_api import running_fake_slack_in_thread
from tests.fakes.slack_state import ALICE, BOB, BOT_TOKEN

from .test_e2e import SECRET, Harness, incident_channel

ALERT = {
    "version": "4",
    "groupKey": '{}:{alertname="CriticalConnectionPoolUtilization"}',
    "status": "firing",
    "receiver": "warroom",
    "groupLabels": {},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://am",
    "truncatedAlerts": 0,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "CriticalConnectionPoolUtilization", "service": "db"},
            "annotations": {"summary": "Connection pool at 97%"},
            "startsAt": "2026-11-26T09:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": "pool97",
        }
    ],
}


@pytest.fixture
def harness(
    database_url: str,
    target_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Harness]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        for var in list(os.environ):
            if var.startswith(("WARROOM_", "SLACK_")):
                monkeypatch.delenv(var)
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("APP_DSN", target_dsn)
        monkeypatch.setenv(
            "WARROOM_RUNBOOKS__TARGETS__POSTGRES", '{"main": {"dsn_env": "APP_DSN"}}'
        )
        grant = {"db-connection-exhaustion.terminate_idle": {"groups": ["S0DBA00001"]}}
        monkeypatch.setenv("WARROOM_RUNBOOKS__GRANTS", json.dumps(grant))
        with TestClient(create_app(load_settings())) as client:
            yield Harness(client, fake)


DIAGNOSTICS = (
    "connections_by_state",
    "connection_utilisation",
    "idle_connections",
    "long_transactions",
)


def test_connection_exhaustion_from_alert_to_confirmed_mitigation(
    harness: Harness,
    target_dsn: str,
) -> None:
    fake = harness.fake
    idle = [psycopg.connect(target_dsn, application_name="leaky-app") for _ in range(4)]
    try:
        answer = harness.client.post(
            "/webhooks/alertmanager",
            content=json.dumps(ALERT),
            headers={"content-type": "application/json"},
        )
        assert answer.json()["opened"] == ["INC-0001"]
        channel = harness.wait(
            "the channel", lambda: incident_channel(fake, "-connection-pool-at-97")
        )
        (results,) = harness.wait(
            "the automatic diagnostics",
            lambda: [m for m in fake.messages(channel.id) if "idle_connections" in m.text],
            seconds=30,
        )
        # One message holds every diagnostic's graded headline (one post, not four at
        # Slack's one per second per channel); each result's rows are in its thread.
        for step in DIAGNOSTICS:
            assert f"db-connection-exhaustion.{step}" in results.text
        tables = harness.wait(
            "the results' rows in the thread",
            lambda: [r.text for r in fake.thread(channel.id, results.ts)][1:],
        )
        assert all(t.startswith("```") for t in tables)
        assert "idle" in fake.thread(channel.id, results.ts)[0].text  # connections by state
        harness.command("lead <@U0ALICE001|alice>", channel=channel.id)
        harness.wait("the lead", lambda: harness.incident()["roles"].get("commander"))

        harness.command("run terminate_idle minutes=0", channel=channel.id, user=BOB.id)
        refused = harness.wait(
            "the refusal",
            lambda: [
                r
                for r in fake.responses
                if "not allowed" in r.get("text", "").lower()
                or "may not" in r.get("text", "").lower()
                or "allowed" in r.get("text", "")
            ],
        )
        assert refused

        harness.command("run terminate_idle minutes=0", channel=channel.id, user=ALICE.id)
        preview = harness.wait(
            "the preview",
            lambda: [m for m in fake.messages(channel.id) if "Terminate idle" in m.text],
        )[-1]
        assert "leaky-app" in json.dumps(preview.blocks) or "idle" in preview.text
        confirm = next(
            e
            for b in preview.blocks
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "runbook.confirm"
        )
        click = {
            "type": "block_actions",
            "user": {"id": ALICE.id},
            "team": {"id": "T0FAKE0001"},
            "trigger_id": fake.issue_trigger_id(),
            "response_url": fake.response_url("c"),
            "channel": {"id": channel.id},
            "actions": [
                {
                    "action_id": "runbook.confirm",
                    "value": confirm["value"],
                    "type": "button",
                    "block_id": "x",
                }
            ],
        }
        assert harness.interaction(click).status_code == 200
        harness.wait(
            "the mitigation's result",
            lambda: [m for m in fake.messages(channel.id) if "terminate_idle` on main" in m.text],
            seconds=30,
        )
        with psycopg.connect(target_dsn) as check:
            left = check.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'leaky-app'"
            ).fetchone()
        assert left == (0,)
        kinds = [e["kind"] for e in harness.incident()["timeline"]]
        assert "step_refused" in kinds
        assert kinds.count("step_run") >= 2  # the automatic diagnostics and the mitigation
    finally:
        for conn in idle:
            conn.close()


def test_rows_go_in_the_thread_and_groups_grant_mitigations(harness: Harness) -> None:
    fake = harness.fake
    answer = harness.client.post(
        "/webhooks/alertmanager",
        content=json.dumps(ALERT),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-connection-pool-at-97"))
    head = harness.wait(
        "a diagnostic",
        lambda: [m for m in fake.messages(channel.id) if "connections_by_state` on main" in m.text],
    )[0]
    replies = harness.wait(
        "its rows in the thread",
        lambda: [r for r in fake.thread(channel.id, head.ts) if "```" in r.text],
    )
    assert "state" in replies[0].text
    # CAROL is not a role holder, but the dba user group she is in is granted the step.
    harness.command("run terminate_idle minutes=0", channel=channel.id, user="U0CAROL001")
    harness.wait(
        "CAROL's preview",
        lambda: [m for m in fake.messages(channel.id) if "requested by <@U0CAROL001>" in m.text],
    )
