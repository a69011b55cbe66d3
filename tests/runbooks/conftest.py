"""Runbook fixtures: a real target Postgres database, real Redis, a real local HTTP service.

The target database is its own database on the test server (``warroom_test_…``), so the
mitigations that terminate or cancel backends only ever touch this test's connections.
Redis checks read ``REDIS_URL`` (db 15); FLUSHDB runs only against db 13 (``FLUSH_REDIS_URL``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from bot.incidents.lifecycle import Incidents
from bot.runbooks import Runbooks, RunbookSettings, load_configured
from bot.runbooks.targets import (
    HttpTarget,
    PostgresTarget,
    RedisTarget,
    TargetsConfig,
    WebhookTarget,
)
from bot.store.db import Database
from bot.store.models import Incident
from tests.loopback import Loopback, QuietHandler

from ..conftest import REDIS_URL, create_pg_database, drop_pg_database, service_missing

#: Run a test only with SQLite as warroom's own store (the targets stay real Postgres/Redis).
SQLITE_STORE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

COMMANDER = "U_COMMANDER"
SECOND = "U_SECOND"
STRANGER = "U_STRANGER"
FLUSH_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/13"
OPS_TOKEN = "ops-token-5f1c2a9e77"


@pytest.fixture(scope="session")
def target_dsn(pg_server: str) -> Iterator[str]:
    """A plain libpq DSN to an empty database the runbooks may act on."""
    name, _url = create_pg_database(pg_server)
    dsn = pg_server.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE victims (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO victims VALUES (1, 'still here')")
    yield dsn
    drop_pg_database(pg_server, name)


def active_queries(dsn: str, like: str) -> list[tuple[Any, ...]]:
    """Backends of warroom's runbook connections whose query text contains ``like``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE application_name LIKE 'warroom %%' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            (f"%{like}%",),
        ).fetchall()


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        service_missing(
            f"Redis at {REDIS_URL} ({error})",
            "Start it (redis-server --daemonize yes) or set WARROOM_TEST_REDIS.",
        )
    return REDIS_URL


@dataclass
class LocalService:
    """An HTTP service on loopback with healthy, slow, failing and hook endpoints."""

    url: str
    hooks: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def _handler(service: LocalService) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            self.send_json(status, body, content_type=content_type)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health" or path == "/api/status":
                self._send(200, {"status": "ok"})
            elif path == "/slow":
                time.sleep(0.6)
                self._send(200, {"status": "ok"})
            elif path == "/hang":
                time.sleep(3)
                self._send(200, {"status": "late"})
            elif path == "/fail":
                self._send(500, "boom: password=hunter22 in the stack trace", "text/plain")
            elif path == "/metrics/json":
                self._send(200, service.metrics)
            elif path == "/version":
                self._send(200, {"version": "v42"})
            elif path == "/notjson":
                self._send(200, "hello", "text/plain")
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            service.hooks.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.path.endswith("/fail"):
                self._send(503, {"error": "deployer busy"})
            else:
                self._send(200, {"ok": True, "deployment": "v41", "action": body.get("action")})

    return Handler


@pytest.fixture(scope="session")
def _http_server() -> Iterator[LocalService]:
    service = LocalService(url="")
    with Loopback(_handler(service)) as server:
        service.url = server.url
        yield service


@pytest.fixture
def service(_http_server: LocalService) -> LocalService:
    found = _http_server
    found.hooks.clear()
    found.metrics = {
        "error_rate": 2.5,
        "latency": {"p95_ms": 700},
        "cache": {"hit_rate_pct": 91},
        "connection_pool": {"utilisation_pct": 45},
    }
    return found


@pytest.fixture
def targets(
    monkeypatch: pytest.MonkeyPatch, target_dsn: str, service: LocalService
) -> TargetsConfig:
    """Every built-in target name, wired to the real services (secrets via the environment)."""
    monkeypatch.setenv("RB_TEST_PG", target_dsn)
    monkeypatch.setenv("RB_TEST_REDIS", REDIS_URL)
    monkeypatch.setenv("RB_TEST_OPS_TOKEN", OPS_TOKEN)
    return TargetsConfig(
        postgres={"main": PostgresTarget(dsn_env="RB_TEST_PG")},
        redis={"cache": RedisTarget(url_env="RB_TEST_REDIS")},
        http={"app": HttpTarget(base_url=service.url)},
        webhooks={
            "ops": WebhookTarget(url=f"{service.url}/hooks", token_env="RB_TEST_OPS_TOKEN"),
            "broken": WebhookTarget(url=f"{service.url}/hooks/fail"),
        },
    )


def write_runbook(directory: Path, text: str, name: str | None = None) -> Path:
    path = directory / (name or f"rb-{uuid.uuid4().hex[:8]}.yaml")
    path.write_text(text)
    return path


@pytest.fixture
def settings(targets: TargetsConfig) -> RunbookSettings:
    return RunbookSettings(targets=targets, grants={"cache-failure.flushdb": {"users": [SECOND]}})


@pytest.fixture
def engine(db: Database, incidents: Incidents, settings: RunbookSettings) -> Runbooks:
    return Runbooks(db, incidents, runbooks=load_configured(settings), settings=settings)


@pytest.fixture
async def incident(incidents: Incidents) -> Incident:
    return await incidents.declare(
        title="Checkout is failing", severity="P1", actor=COMMANDER, commander=COMMANDER
    )
