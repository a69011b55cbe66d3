"""The real Alertmanager (Debian's prometheus-alertmanager) posting to a real warroom server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bot.store.db import sync_url
from tests.alertmanager_process import running_alertmanager
from tests.conftest import LiveServer
from tests.waiting import wait_for

TOKEN = "am-shared-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def warroom(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    config = tmp_path / "warroom.yaml"
    config.write_text("webhooks:\n  am:\n    source: alertmanager\n    token_env: T_AM_TOKEN\n")
    server = LiveServer(
        database_url, tmp_path, env={"WARROOM_CONFIG": str(config), "T_AM_TOKEN": TOKEN}
    )
    yield server
    server.stop()


@pytest.fixture
def alertmanager(warroom: LiveServer, tmp_path: Path) -> Iterator[str]:
    config = f"""
route:
  receiver: warroom
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: warroom
    webhook_configs:
      - url: {warroom.url}/webhooks/am
        send_resolved: true
        http_config:
          authorization:
            credentials: {TOKEN}
"""
    with running_alertmanager(config, tmp_path, free_port()) as url:
        yield url


def push(url: str, *, ends_at: datetime | None = None) -> None:
    alert = {
        "labels": {
            "alertname": "CriticalConnectionPoolUtilization",
            "service": "db",
            "severity": "critical",
            "instance": "db-primary:5432",
        },
        "annotations": {
            "summary": "Connection pool at 97% on db-primary",
            "runbook_url": "https://runbooks.example/db-connection-exhaustion",
        },
        "generatorURL": "http://prometheus.example/graph?g0.expr=pool_utilization%3E0.95",
        "startsAt": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat()
    answer = httpx.post(f"{url}/api/v2/alerts", json=[alert], timeout=5)
    assert answer.status_code == 200, answer.text


def test_alertmanager_firing_then_resolved(
    alertmanager: str, warroom: LiveServer, database_url: str
) -> None:
    engine = sa.create_engine(sync_url(database_url))

    def query(text: str) -> list[tuple]:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(text))]

    push(alertmanager)
    firing = [("firing",)]
    wait_for("the firing notification", lambda: query("SELECT status FROM alert") == firing, 30)
    push(alertmanager, ends_at=datetime.now(UTC) - timedelta(seconds=1))
    resolved = [("resolved",)]
    wait_for("the resolved notification", lambda: query("SELECT status FROM alert") == resolved, 30)

    (incident,) = query(
        "SELECT key, title, severity, severity_reason, status, service FROM incident"
    )
    assert incident == (
        "INC-0001",
        "Connection pool at 97% on db-primary",
        "P1",
        "rule db-pool-critical: labels.alertname=CriticalConnectionPoolUtilization",
        "monitoring",
        "db",
    )
    ((links, count),) = query("SELECT links, count FROM alert")
    links = json.loads(links) if isinstance(links, str) else links
    assert links["runbook"] == "https://runbooks.example/db-connection-exhaustion"
    assert links["generator"].startswith("http://prometheus.example/graph")
    assert count == 2
    kinds = [k for (k,) in query("SELECT kind FROM timeline_event ORDER BY id")]
    assert [k for k in kinds if k != "channel"] == ["declared", "alert", "alert", "status"]
    assert "channel" in kinds  # the local transcript opened the incident's channel
    engine.dispose()
    log = warroom.log.read_text()
    assert "webhook am: accepted" in log
