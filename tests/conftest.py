"""Shared fixtures: real SQLite and real Postgres, a fixed clock.

Postgres is expected at ``WARROOM_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and Redis at
``WARROOM_TEST_REDIS`` (default ``redis://127.0.0.1:6379/15``). On a laptop
without them those tests skip and say how to enable them; under CI
(``CI=true``) a missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from bot.clock import FixedClock
from bot.incidents.lifecycle import Incidents
from bot.incidents.severity import P1_P4
from bot.store.db import Database
from bot.store.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "WARROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WARROOM_TEST_REDIS", "redis://127.0.0.1:6379/15")
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

TABLES = (
    "timeline_event",
    "follow_up",
    "alert",
    "alert_group",
    "webhook_delivery",
    "outbox",
    "transcript",
    "replay_key",
    "web_session",
    "external_record",
    "intake_entry",
    "incident",
)


def service_missing(what: str, how: str) -> None:
    """Skip on a laptop, fail under CI: a CI run must exercise every real service."""
    message = f"{what} is not reachable. {how}"
    if UNDER_CI:
        pytest.fail(f"{message} (CI=true: services are required, not optional)")
    pytest.skip(message)


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as error:
        return str(error).strip().splitlines()[0]


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable Postgres server."""
    problem = _pg_reachable()
    if problem:
        service_missing(
            f"PostgreSQL at {PG_ADMIN_URL} ({problem})",
            "Start it (pg_ctlcluster 15 main start) or set WARROOM_TEST_POSTGRES.",
        )
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A new empty database; returns (name, SQLAlchemy URL)."""
    name = f"warroom_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


def drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_migrated(pg_server: str) -> Iterator[str]:
    """One migrated Postgres database for the session; tests empty it after use."""
    name, url = create_pg_database(pg_server)
    upgrade(url)
    yield url
    drop_pg_database(pg_server, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _empty_pg(url: str) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        conn.execute("UPDATE counter SET value = 0")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A migrated, empty database: each test runs once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        path = tmp_path / "incidents.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("pg_migrated")
    _empty_pg(url)
    yield url
    _empty_pg(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def incidents(db: Database, clock: FixedClock) -> Incidents:
    return Incidents(db, clock=clock, scheme=P1_P4)


class LiveServer:
    """A real `warroom serve` process on a free loopback port."""

    def __init__(self, database_url: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
        clean.update(
            {"DATABASE_URL": database_url, "WARROOM_SERVER__PORT": str(self.port)}, **(env or {})
        )
        self.log = cwd / f"server-{self.port}.log"
        self._log = self.log.open("w")
        warroom = Path(sys.executable).with_name("warroom")
        self.process = subprocess.Popen(
            [warroom, "serve"], cwd=cwd, env=clean, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def live_server(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    server = LiveServer(database_url, tmp_path)
    yield server
    server.stop()
    if request.node.stash.get(_CALL_FAILED, False):
        # What the server said is the first thing to read when a test against it fails.
        tail = server.log.read_text(errors="replace").splitlines()[-60:]
        print(f"--- the last lines of {server.log.name} ---", *tail, sep="\n")
