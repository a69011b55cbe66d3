"""Cancel in Slack: the pending request's Cancel button, refused for others, then gone."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack_state import ALICE, BOB

from .test_e2e import Harness, incident_channel
from .test_runbooks_in_slack import ALERT, harness  # noqa: F401  (the fixture)


def _click(on: Harness, user: str, action: str, value: str, channel: str, ts: str) -> None:
    fake = on.fake
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T0FAKE0001"},
        "trigger_id": fake.issue_trigger_id(user),
        "response_url": fake.response_url(f"click-{len(fake.responses)}"),
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "message": {"ts": ts},
        "actions": [{"action_id": action, "value": value, "type": "button", "block_id": "x"}],
    }
    assert on.interaction(payload).status_code == 200


def test_the_requester_cancels_a_pending_mitigation_with_its_button(
    harness: Harness,  # noqa: F811
) -> None:
    fake = harness.fake
    harness.client.post(
        "/webhooks/alertmanager",
        content=json.dumps(ALERT),
        headers={"content-type": "application/json"},
    )
    channel = harness.wait("the channel", lambda: incident_channel(fake, "-connection-pool-at-97"))
    harness.command("lead <@U0ALICE001|alice>", channel=channel.id)
    harness.wait("the lead", lambda: harness.incident()["roles"].get("commander"))
    harness.command("run terminate_idle minutes=0", channel=channel.id, user=ALICE.id)
    request = harness.wait(
        "the request",
        lambda: [m for m in fake.messages(channel.id) if "requested by <@U0ALICE001>" in m.text],
    )[-1]
    buttons = {
        e["action_id"]: e for b in request.blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert set(buttons) == {"runbook.confirm", "runbook.cancel"}
    run_id = buttons["runbook.cancel"]["value"]

    _click(harness, BOB.id, "runbook.cancel", run_id, channel.id, request.ts)
    harness.wait(
        "BOB's refusal",
        lambda: [r for r in fake.responses if "or the incident commander" in r.get("text", "")],
    )
    assert "runbook.cancel" in json.dumps(fake.channel(channel.id).messages[request.ts].blocks)

    _click(harness, ALICE.id, "runbook.cancel", run_id, channel.id, request.ts)
    harness.wait(
        "the request to say it was cancelled",
        lambda: "Cancelled" in json.dumps(fake.channel(channel.id).messages[request.ts].blocks),
    )
    updated = fake.channel(channel.id).messages[request.ts]
    assert "cancelled by <@U0ALICE001>" in updated.text
    assert not [b for b in updated.blocks or [] if b["type"] == "actions"]  # no button left

    _click(harness, ALICE.id, "runbook.confirm", run_id, channel.id, request.ts)
    harness.wait(
        "the refused confirmation",
        lambda: [r for r in fake.responses if f"Run #{run_id} is cancelled" in r.get("text", "")],
    )
    kinds = [e["kind"] for e in harness.incident()["timeline"]]
    assert "step_cancelled" in kinds
    assert not [m for m in fake.messages(channel.id) if "terminate_idle` on main" in m.text]
