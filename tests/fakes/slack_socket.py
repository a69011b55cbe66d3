"""Slack's Socket Mode, faked: apps.connections.open and the WebSocket it hands out.

An app calls apps.connections.open with its app-level token (``xapp-``, in the Authorization
header) and gets a one-time URL, here ``ws://127.0.0.1:<port>/socket/<ticket>`` (Slack's is
``wss://wss-primary.slack.com/link/?ticket=...&app_id=...``). On connect Slack sends ``hello``;
then each request (a slash command, a click, an event) comes as an envelope::

    {"envelope_id": "...", "type": "slash_commands" | "interactive" | "events_api",
     "payload": {...}, "accepts_response_payload": true, "retry_attempt": 0, "retry_reason": ""}

and the app acknowledges it by sending back ``{"envelope_id": "..."}``, with a ``payload`` when
it answers with content (a slash command's immediate reply). Tests push envelopes with
`SocketMode.send` and wait for the ack with `SocketMode.wait_for_ack`.

The fake's server may run in another thread than the test: sends go through the event loop of
the connection, acks are kept under a lock and waited for with a condition.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.slack_calls import Args, CallContext, slack_method
from tests.fakes.slack_state import Workspace

ENVELOPE_TYPES = frozenset({"slash_commands", "interactive", "events_api"})
# Methods that take an app-level token only (bot and user tokens get not_allowed_token_type).
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@slack_method("apps.connections.open", errors=())
def apps_connections_open(ctx: CallContext, args: Args) -> dict[str, Any]:
    ticket = uuid.uuid4().hex
    ctx.workspace.socket_tickets.add(ticket)
    origin = ctx.base_url.removesuffix("/")
    scheme, _, rest = origin.partition("://")
    return {"url": f"{'wss' if scheme == 'https' else 'ws'}://{rest}/socket/{ticket}"}


@dataclass(frozen=True)
class Ack:
    """What the app sent back for an envelope, and when (monotonic seconds)."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float


@dataclass
class _Connection:
    websocket: WebSocket
    loop: asyncio.AbstractEventLoop


class SocketMode:
    """The Socket Mode side of the fake: tickets, live connections, envelopes sent, acks."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.hellos = 0
        self.refused = 0  # connections with an unknown or used ticket
        self.sent: dict[str, dict[str, Any]] = {}
        self.sent_at: dict[str, float] = {}
        self.acks: list[Ack] = []
        self.unexpected: list[str] = []  # anything the app sent that is not an ack
        self._connections: list[_Connection] = []
        self._changed = threading.Condition()

    # -- the WebSocket endpoint ----------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        ticket = websocket.path_params["ticket"]
        if ticket not in self.workspace.socket_tickets:
            self.refused += 1
            await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        self.workspace.socket_tickets.discard(ticket)  # a ticket is good for one connection
        await websocket.accept()
        connection = _Connection(websocket, asyncio.get_running_loop())
        with self._changed:
            self._connections.append(connection)
            self.hellos += 1
            self._changed.notify_all()
        try:
            await websocket.send_text(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": len(self._connections),
                        "debug_info": {
                            "host": "applink-fake-1",
                            "build_number": 1,
                            "approximate_connection_time": 18060,
                        },
                        "connection_info": {"app_id": self.workspace.team.app_id},
                    }
                )
            )
            while True:
                self._received(await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            with self._changed:
                self._connections.remove(connection)
                self._changed.notify_all()

    def _received(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if not isinstance(envelope_id, str):
            self.unexpected.append(text)
            return
        payload = message.get("payload")
        with self._changed:
            self.acks.append(Ack(envelope_id, payload, time.monotonic()))
            self._changed.notify_all()

    # -- test controls -------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        return len(self._connections)

    def wait_connected(self, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._connections, timeout):
                raise TimeoutError("no Socket Mode connection")

    def envelope(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        envelope_id: str | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        accepts_response_payload: bool | None = None,
    ) -> dict[str, Any]:
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"not a Socket Mode envelope type: {envelope_type!r}")
        if accepts_response_payload is None:
            # Slack lets an app answer a command or an interaction in its ack, not an event.
            accepts_response_payload = envelope_type != "events_api"
        return {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }

    def send(self, envelope_type: str, payload: dict[str, Any], **options: Any) -> str:
        """Push an envelope to the newest connection from a thread other than the fake's;
        returns its envelope_id (pass ``envelope_id=`` and ``retry_attempt=`` for a retry)."""
        envelope = self.envelope(envelope_type, payload, **options)
        connection = self._newest()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is connection.loop:
            raise RuntimeError("in the fake's own event loop: use `await send_async(...)`")
        self._record(envelope)
        future = asyncio.run_coroutine_threadsafe(
            connection.websocket.send_text(json.dumps(envelope)), connection.loop
        )
        future.result(timeout=5)
        return str(envelope["envelope_id"])

    async def send_async(self, envelope_type: str, payload: dict[str, Any], **options: Any) -> str:
        """`send` from the event loop that serves the fake (``running_fake_slack``)."""
        envelope = self.envelope(envelope_type, payload, **options)
        connection = self._newest()
        self._record(envelope)
        await connection.websocket.send_text(json.dumps(envelope))
        return str(envelope["envelope_id"])

    def acks_for(self, envelope_id: str) -> list[Ack]:
        with self._changed:
            return [ack for ack in self.acks if ack.envelope_id == envelope_id]

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """The app's first ack of an envelope; TimeoutError if none comes in ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._first(envelope_id), timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} in {timeout:g}s")
            ack = self._first(envelope_id)
            assert ack is not None
            return ack

    async def wait_for_ack_async(self, envelope_id: str, seconds: float = 5.0) -> Ack:
        """`wait_for_ack` from an event loop (polls: the ack may come in another thread)."""
        deadline = time.monotonic() + seconds
        while (ack := self._first(envelope_id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ack for envelope {envelope_id} in {seconds:g}s")
            await asyncio.sleep(0.01)
        return ack

    def _first(self, envelope_id: str) -> Ack | None:
        return next((ack for ack in self.acks if ack.envelope_id == envelope_id), None)

    def _record(self, envelope: dict[str, Any]) -> None:
        envelope_id = str(envelope["envelope_id"])
        with self._changed:
            self.sent.setdefault(envelope_id, envelope)
            self.sent_at.setdefault(envelope_id, time.monotonic())

    def _newest(self) -> _Connection:
        with self._changed:
            if not self._connections:
                raise RuntimeError("no app is connected over Socket Mode")
            return self._connections[-1]
