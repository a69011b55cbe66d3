"""Socket Mode while Slack cannot be reached: one log line per attempt, backoff, then connected.

A TCP gate stands between warroom and the fake Slack: shut, connections are refused (as when
Slack or the network is down); it can also drop only the WebSocket connections, or cut the
live ones. warroom's real app runs with ``socket_mode=True`` behind it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import handlers.slack.socket as socket_mode
from bot.config.settings import load_settings
from handlers.app import create_app
from tests.fakes.slack_api import FakeSlack
from tests.slack.test_socket_mode import incident_channels, slash_command
from tests.waiting import wait_for

pytest_plugins = ["tests.slack.test_socket_mode"]  # its fixtures: fake, socket_env

RETRY = re.compile(r"Socket Mode: cannot connect \((.+)\); retrying in ([0-9.]+)s$")


class Gate:
    """A loopback TCP forwarder to ``target_port`` that can be shut and opened again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.drop_websockets = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def open(self) -> None:
        self._run(self._open())

    def shut(self, *, cut: bool = False) -> None:
        """Refuse new connections; with ``cut``, also close the ones that are open."""
        self._run(self._shut(cut))

    def stop(self) -> None:
        self.shut(cut=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _run(self, work: object) -> None:
        asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=5)  # type: ignore[arg-type]

    async def _open(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def _shut(self, cut: bool) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if cut:
            for writer in list(self._writers):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            first = await reader.read(65536)
            if self.drop_websockets and first.startswith(b"GET /socket/"):
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(up_writer)
            up_writer.write(first)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)


@pytest.fixture
def gate(socket_env: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    port = int(socket_env.base_url.split(":")[2].split("/")[0])
    made = Gate(port)
    monkeypatch.setenv("WARROOM_SLACK__API_URL", made.url)
    monkeypatch.setattr(socket_mode, "FIRST_RETRY_S", 0.2)
    monkeypatch.setattr(socket_mode, "MAX_RETRY_S", 0.8)
    monkeypatch.setattr(socket_mode, "WATCH_S", 0.1)
    yield made
    made.stop()


def retries(caplog: pytest.LogCaptureFixture) -> list[tuple[str, float]]:
    found = []
    for record in caplog.records:
        if record.name == "handlers.slack.socket" and (match := RETRY.match(record.getMessage())):
            found.append((match.group(1), float(match.group(2))))
    return found


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info and r.name.startswith(("handlers", "slack_sdk", "slack_bolt", "bot"))
    ]
    assert noisy == []


def declare_over_socket(fake: FakeSlack) -> None:
    general = fake.channel_by_name("general").id
    payload = slash_command(fake, "declare Network blip sev:P3", channel=general, hook="g")
    fake.wait_for_ack(fake.socket_send("slash_commands", payload), timeout=3)
    wait_for("the incident channel", lambda: incident_channels(fake))


def test_slack_unreachable_at_start_is_retried_with_backoff(
    socket_env: FakeSlack, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    fake = socket_env
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    with TestClient(create_app(load_settings(), socket_mode=True)) as client:
        assert time.monotonic() - started < 10  # the server starts; Socket Mode keeps trying
        assert client.get("/healthz").status_code == 200
        wait_for("four attempts", lambda: len(retries(caplog)) >= 4)
        tried = retries(caplog)
        assert all(what.startswith("apps.connections.open: ") for what, _ in tried)
        assert "Connect call failed" in tried[0][0] or "refused" in tried[0][0].lower()
        assert [delay for _, delay in tried[:4]] == [0.2, 0.4, 0.8, 0.8]  # doubling, capped
        assert fake.socket_mode.hellos == 0

        gate.open()
        fake.socket_mode.wait_connected(timeout=10)
        declare_over_socket(fake)
        assert fake.socket_mode.hellos == 1
    assert fake.socket_mode.connected == 0
    no_tracebacks(caplog)


def test_an_unreachable_websocket_is_retried_with_a_new_url(
    socket_env: FakeSlack, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    fake = socket_env
    caplog.set_level(logging.INFO)
    gate.drop_websockets = True
    gate.open()
    with TestClient(create_app(load_settings(), socket_mode=True)):
        wait_for("three attempts", lambda: len(retries(caplog)) >= 3)
        tried = retries(caplog)
        websocket = [what for what, _ in tried if what.startswith("the Socket Mode WebSocket: ")]
        # apps.connections.open is Tier 1: fast retries meet its rate limit, and wait it out.
        limited = [what for what, _ in tried if what.endswith("Slack answered ratelimited")]
        assert len(websocket) >= 2
        assert len(websocket) + len(limited) == len(tried)
        gate.drop_websockets = False
        fake.socket_mode.wait_connected(timeout=10)
        # Each attempt asked for a fresh one-time URL.
        assert (
            len([c for c in fake.calls_to("apps.connections.open") if c.ok]) >= len(websocket) + 1
        )
        declare_over_socket(fake)
    no_tracebacks(caplog)


def test_a_lost_connection_is_reopened(
    socket_env: FakeSlack, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    fake = socket_env
    caplog.set_level(logging.INFO)
    gate.open()
    with TestClient(create_app(load_settings(), socket_mode=True)):
        fake.socket_mode.wait_connected()
        gate.shut(cut=True)
        wait_for("the loss", lambda: fake.socket_mode.connected == 0)
        wait_for("two failed attempts", lambda: len(retries(caplog)) >= 2)
        lost = [r for r in caplog.records if "connection to Slack was lost" in r.getMessage()]
        assert len(lost) == 1
        gate.open()
        wait_for("the new connection", lambda: fake.socket_mode.hellos == 2, seconds=10)
        declare_over_socket(fake)
    no_tracebacks(caplog)


def test_stopping_while_slack_is_unreachable_is_prompt(
    socket_env: FakeSlack, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(load_settings(), socket_mode=True)):
        wait_for("an attempt", lambda: retries(caplog))
        started = time.monotonic()
    assert time.monotonic() - started < 5
    no_tracebacks(caplog)
