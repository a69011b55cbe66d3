"""The server: a real `warroom serve` process, and the ASGI app in-process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.core import Core
from handlers.app import Background, create_app

WARROOM = Path(sys.executable).with_name("warroom")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.pop("DATABASE_URL", None)
    return env


def test_serve_with_no_configuration(tmp_path: Path) -> None:
    """The README's run command on a fresh directory: ./incidents.db appears, /healthz is 200."""
    port = free_port()
    env = clean_env() | {"WARROOM_SERVER__PORT": str(port)}
    server = subprocess.Popen(
        [WARROOM, "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, "server exited early"
                assert time.monotonic() < deadline, "server did not answer within 30 s"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "database": "ok", "redis": "not configured"}
        assert (tmp_path / "incidents.db").exists()
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    assert "Slack is not connected" in output
    assert "SLACK_BOT_TOKEN" in output
    assert "Application shutdown complete" in output  # a clean stop on SIGTERM
    assert server.returncode in (0, -15), output


def test_readyz_is_503_when_the_database_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("WARROOM_DATABASE__AUTO_MIGRATE", "false")
    app = create_app(load_settings())
    with TestClient(app) as client:
        started = time.monotonic()
        ready = client.get("/readyz")
        assert time.monotonic() - started < 10
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert "database is unavailable" in ready.json()["database"]
        assert client.get("/healthz").status_code == 200


def test_readyz_on_each_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # down: reported, not fatal
    with TestClient(create_app(load_settings())) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["redis"].startswith("unavailable")


async def test_stop_lets_request_work_finish_and_logs_its_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack command's work runs after its ack: a shutdown waits for it instead of dropping it."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/background.db")
    core = Core.build(load_settings())
    background = Background(core, None)
    finished: list[str] = []

    async def answer() -> None:
        await asyncio.sleep(0.05)
        finished.append("answered")

    async def broken() -> None:
        raise RuntimeError("boom")

    background.later(answer())
    background.later(broken())
    try:
        await background.stop()
    finally:
        await core.close()
    assert finished == ["answered"]
    assert not background.requests
    assert "request work failed" in caplog.text
    assert "boom" in caplog.text
