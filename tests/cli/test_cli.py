"""The `warroom` command, in-process (both databases) and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from handlers.cli import cli
from tests.data import PAYLOADS_DIR
from tests.fakes.pagerduty import FakePagerDuty

WARROOM = Path(sys.executable).with_name("warroom")


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", database_url)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--as", "U-oncall", *args], catch_exceptions=False)

    return invoke


def test_declare_then_show(run) -> None:
    made = run(
        "incident",
        "declare",
        "Database connection exhaustion",
        "--severity",
        "P1",
        "--impact",
        "checkout failing",
        "--commander",
        "alice",
    )
    assert made.exit_code == 0, made.output
    assert made.output.startswith("INC-0001  P1  investigating Database connection exhaustion")

    shown = run("incident", "show", "INC-0001")
    assert shown.exit_code == 0
    assert "INC-0001  Database connection exhaustion" in shown.output
    assert "Severity:     P1 (person: set by U-oncall)" in shown.output
    assert "Impact:       checkout failing" in shown.output
    assert "Roles:        commander: alice" in shown.output
    assert "declared      U-oncall" in shown.output
    assert "alice is commander" in shown.output


def test_a_whole_incident_from_the_cli(run) -> None:
    run("incident", "declare", "Cache failure", "-s", "P2")
    for args in (
        ("status", "INC-1", "identified", "--note", "redis OOM"),
        ("assign", "1", "communications", "bob"),
        ("note", "INC-0001", "flushed the session cache"),
        ("followup", "INC-1", "set maxmemory-policy", "--owner", "carol"),
        ("status", "INC-1", "monitoring"),
        ("resolve", "INC-1", "--summary", "cache back", "--root-cause", "no eviction policy"),
    ):
        result = run("incident", *args)
        assert result.exit_code == 0, (args, result.output)
    data = json.loads(run("incident", "show", "INC-1", "--json").output)
    assert data["status"] == "resolved"
    assert data["root_cause"] == "no eviction policy"
    assert data["roles"] == {"communications": "bob"}
    assert [e["kind"] for e in data["timeline"]] == [
        "declared",
        "channel",
        "status",
        "role",
        "note",
        "follow_up",
        "status",
        "resolved",
    ]
    actions = [t["action"] for t in data["transcript"]]
    assert actions[:5] == ["channel", "topic", "card", "pin", "message"]
    assert "card update" in actions
    resolution = [t["text"] for t in data["transcript"] if t["action"] == "message"][-1]
    assert resolution.startswith("INCIDENT RESOLVED: Cache failure")
    assert all(d["status"] == "done" for d in data["deliveries"])
    assert data["follow_ups"] == [
        {"id": 1, "text": "set maxmemory-policy", "owner": "carol", "status": "open"}
    ]
    assert "no open incidents" in run("incident", "list").output
    assert "INC-0001  P2  resolved" in run("incident", "list", "--all").output
    message = run("incident", "message", "INC-1", "resolution").output
    assert message.startswith("INCIDENT RESOLVED: Cache failure\n")
    assert "Root Cause: no eviction policy" in message


def test_bad_severity_changes_nothing(run) -> None:
    run("incident", "declare", "Replication lag", "-s", "P2")
    before = run("incident", "show", "INC-1", "--json").output
    refused = run("incident", "sev", "INC-1", "P7")
    assert refused.exit_code == 1
    assert "error: Unknown severity 'P7': use one of P1, P2, P3, P4." in refused.output
    assert run("incident", "show", "INC-1", "--json").output == before
    not_made = run("incident", "declare", "x", "--severity", "urgent")
    assert not_made.exit_code == 1
    assert (
        "no incidents" in run("incident", "list", "--all").output.replace("INC-0001", "")
        or "INC-0002" not in run("incident", "list", "--all").output
    )


def test_illegal_status_change_changes_nothing(run) -> None:
    run("incident", "declare", "High error rate")
    run("incident", "resolve", "INC-1")
    before = run("incident", "show", "INC-1", "--json").output
    refused = run("incident", "status", "INC-1", "mitigating")
    assert refused.exit_code == 1
    assert "INC-0001 is resolved. Reopen it first" in refused.output
    unknown = run("incident", "status", "INC-1", "done")
    assert unknown.exit_code == 1
    assert "Unknown status 'done'" in unknown.output
    assert run("incident", "show", "INC-1", "--json").output == before


def test_unknown_incident(run) -> None:
    result = run("incident", "show", "INC-0042")
    assert result.exit_code == 1
    assert "No incident INC-0042" in result.output


def test_broken_config_exits_2_naming_file_key_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: not-a-port\nseverity:\n  scheme: p7\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    assert result.exit_code == 2
    assert f"{config}:2: server.port: Input should be a valid integer" in result.output
    assert f"{config}:4: severity.scheme: Input should be 'p1-p4' or 'p0-p3'" in result.output


def test_check_config_prints_masked_settings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-value")
    config = tmp_path / "ok.yaml"
    config.write_text("severity:\n  scheme: p0-p3\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check-config"])
    assert result.exit_code == 0, result.output
    assert "xoxb-secret-value" not in result.output
    assert "signing-secret-value" not in result.output
    assert '"bot_token": "********"' in result.output
    assert '"scheme": "p0-p3"' in result.output


def test_every_command_has_help() -> None:
    commands = [[], ["serve"], ["check-config"], ["db"], ["db", "upgrade"], ["incident"]]
    commands += [["incident", name] for name in cli.commands["incident"].commands]  # type: ignore[attr-defined]
    for args in commands:
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage: " in result.output
        body = result.output.split("\n\n", 1)[1]
        assert len(body.strip()) > 20, f"`warroom {' '.join(args)} --help` explains nothing"


def test_real_process_on_a_fresh_directory(tmp_path: Path) -> None:
    """As a new user: no config, no database; the CLI creates ./incidents.db."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.pop("DATABASE_URL", None)
    version = subprocess.run([WARROOM, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("warroom, version ")
    made = subprocess.run(
        [WARROOM, "incident", "declare", "Database connection exhaustion", "--severity", "P1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""  # no log noise on a plain command
    assert (tmp_path / "incidents.db").exists()
    shown = subprocess.run(
        [WARROOM, "incident", "show", "INC-0001"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "Database connection exhaustion" in shown.stdout
    assert "declared" in shown.stdout


def test_unreachable_database_exits_3(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    result = CliRunner().invoke(cli, ["incident", "list"])
    assert result.exit_code == 3
    assert "the database is unavailable" in result.output


def test_replay_dry_run_explains_and_writes_nothing(run) -> None:
    body = str(PAYLOADS_DIR / "alertmanager" / "firing_capture_am0.27.0.wire.json")
    dry = run("replay", body, "--source", "alertmanager", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "firing   ServiceHighErrorRate  [0eeee852e85422ff]" in dry.output
    assert "severity P1: alertmanager severity 'critical' (no rule matched)" in dry.output
    assert "what would happen:\n  ServiceHighErrorRate: opens INC-0001" in dry.output
    assert "dry run: nothing was written" in dry.output
    assert "no incidents" in run("incident", "list", "--all").output
    real = run("replay", body, "--source", "alertmanager")
    assert "opens INC-0001" in real.output
    assert "INC-0001" in run("incident", "list").output


def test_replay_refuses_bad_bodies(run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"alerts": [{"status": "firing"}]}')
    result = run("replay", str(broken), "--source", "alertmanager")
    assert result.exit_code == 1
    assert "alerts[0].labels" in result.output
    broken.write_text("{nope")
    assert "malformed JSON" in run("replay", str(broken), "--source", "grafana").output
    assert run("replay", str(broken)).exit_code == 2  # neither --source nor --endpoint


def test_socket_mode_needs_an_app_token(monkeypatch) -> None:
    for var in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    result = CliRunner().invoke(cli, ["serve", "--socket-mode"])
    assert result.exit_code == 2
    assert "--socket-mode needs SLACK_APP_TOKEN" in result.output


def test_postmortem_command(run, tmp_path: Path) -> None:
    run("incident", "declare", "Replication lag", "-s", "P2")
    run("incident", "resolve", "INC-1", "--root-cause", "a long transaction on the primary")
    shown = run("postmortem", "INC-1")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("# Post-mortem: INC-0001")
    assert "DRAFT" in shown.output
    assert "a long transaction on the primary" in shown.output
    target = tmp_path / "pm.html"
    written = run("postmortem", "INC-1", "--format", "html", "-o", str(target))
    assert written.exit_code == 0
    assert "<h1>Post-mortem: INC-0001" in target.read_text()
    assert run("postmortem", "INC-9").exit_code == 1


def test_a_cli_declare_pages_at_once_and_a_page_pagerduty_refuses_now_waits_in_the_outbox(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI composes the server's pager: with the routing key set (the settings load only
    then) a declare pages at once. A 429 or 500 leaves the row pending, not failed, for the
    server's worker or the next command to deliver."""
    key = "c" * 32
    with FakePagerDuty({key}) as pd:
        monkeypatch.setenv("T_PD_ONCALL", key)
        config = tmp_path / "warroom.yaml"
        config.write_text(
            "paging:\n"
            f"  pagerduty: {{oncall: {{routing_key_env: T_PD_ONCALL, url: '{pd.url}'}}}}\n"
            "  rules: [{severities: [P1], target: oncall}]\n"
        )
        made = run("--config", str(config), "incident", "declare", "Checkout down", "-s", "P1")
        assert made.exit_code == 0, made.output
        assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [("trigger", "INC-0001")]

        pd.fault_rate = 1.0  # PagerDuty answers 429 or 500 to everything
        made = run("--config", str(config), "incident", "declare", "Search down", "-s", "P1")
        assert made.exit_code == 0, made.output
        shown = json.loads(
            run("--config", str(config), "incident", "show", "INC-2", "--json").output
        )
        pages = [d for d in shown["deliveries"] if d["kind"] == "page_trigger"]
        assert [d["status"] for d in pages] == ["pending"]
        assert len(pd.events) == 1

        pd.fault_rate = 0.0
        time.sleep(1.1)  # past the retry (Retry-After: 1, or the first backoff of 1 s)
        noted = run("--config", str(config), "incident", "note", "INC-1", "looking")
        assert noted.exit_code == 0, noted.output
        assert [(e["event_action"], e["dedup_key"]) for e in pd.events] == [
            ("trigger", "INC-0001"),
            ("trigger", "INC-0002"),
        ]
