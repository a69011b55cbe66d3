"""Socket Mode: the connection to Slack, kept open with capped exponential backoff.

slack_sdk's client retries a failed connection itself, forever, every ten seconds, with a
traceback in the log each time, and reuses a WebSocket URL that Slack hands out for one
connection. Here each attempt asks apps.connections.open for a new URL and connects once;
a network failure is logged as one line (what failed, when the next try is) and retried
after 1 s, 2 s, 4 s… up to a minute, until the server stops. A token Slack refuses is not
retried: at start it stops the server with a clear error (``TokenRefused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack.requests import ENVELOPE_HEADER

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0
#: How often the open connection is checked.
WATCH_S = 1.0
#: A connection that stayed up this long resets the backoff when it drops.
STABLE_S = 30.0
PING_INTERVAL_S = 10.0
#: apps.connections.open errors that mean the token is wrong: retrying cannot help.
REFUSED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
    }
)
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class TokenRefused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _Unreachable(Exception):
    def __init__(self, what: str, reason: str, *, retry_after: float = 0.0) -> None:
        super().__init__(f"{what}: {reason}")
        self.retry_after = retry_after


class _Client(SocketModeClient):
    """slack_sdk's aiohttp client, but ``connect()`` tries once and raises: retries are ours."""

    async def connect(self) -> None:
        old = self.current_session
        if old is not None and not old.closed:
            with contextlib.suppress(Exception):
                await old.close()
        if self.aiohttp_client_session.closed:
            self.aiohttp_client_session = aiohttp.ClientSession()
        assert self.wss_uri is not None
        session = await self.aiohttp_client_session.ws_connect(
            self.wss_uri,
            autoping=False,
            heartbeat=self.ping_interval,
            proxy=self.proxy,
            ssl=self.web_client.ssl if self.web_client.ssl is not None else True,
        )
        self.current_session = session
        self.stale = False
        self.last_ping_pong_time = None
        await session.ping(f"sdk-ping-pong:{time.time()}".encode())
        for task in (self.current_session_monitor, self.message_receiver):
            if task is not None:
                task.cancel()
        self.current_session_monitor = asyncio.ensure_future(self.monitor_current_session())
        self.message_receiver = asyncio.ensure_future(self.receive_messages())


class SocketMode:
    """One Socket Mode connection for ``bolt``, reconnected until ``close()``."""

    def __init__(self, bolt: AsyncApp, app_token: str) -> None:
        self.bolt = bolt
        self.client = _Client(
            app_token=app_token,
            logger=logging.getLogger("slack_sdk.socket_mode"),
            # Its own Web API client, without slack_sdk's retry of connection errors (and its
            # log line): the watcher retries, with backoff.
            web_client=AsyncWebClient(
                base_url=bolt.client.base_url, timeout=bolt.client.timeout, retry_handlers=[]
            ),
            auto_reconnect_enabled=False,  # the watcher below reconnects, with backoff
            ping_interval=PING_INTERVAL_S,
        )
        self.client.socket_mode_request_listeners.append(self._handle)
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._connected_at = 0.0

    async def start(self) -> None:
        """Connect, or keep trying in the background if Slack cannot be reached.

        Raises :class:`TokenRefused` (and closes) when Slack refuses the app-level token.
        """
        wait: float | None = None
        try:
            await self._connect()
        except TokenRefused:
            await self.client.close()  # type: ignore[no-untyped-call]
            raise
        except _Unreachable as error:
            wait = max(FIRST_RETRY_S, error.retry_after)
            log.warning("Socket Mode: cannot connect (%s); retrying in %s", error, _s(wait))
        self._watcher = asyncio.create_task(self._watch(wait))

    async def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self.client.close()  # type: ignore[no-untyped-call]

    @property
    def connected(self) -> bool:
        session = self.client.current_session
        return session is not None and not session.closed

    async def _connect(self) -> None:
        try:
            answer = await self.client.web_client.api_call(
                "apps.connections.open", http_verb="POST", params={"token": self.client.app_token}
            )
        except SlackApiError as error:
            code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
            if code in REFUSED:
                raise TokenRefused(code) from None
            retry_after = float(error.response.headers.get("Retry-After", 0) or 0)
            raise _Unreachable(
                "apps.connections.open", f"Slack answered {code}", retry_after=retry_after
            ) from None
        except _NETWORK_ERRORS as error:
            raise _Unreachable("apps.connections.open", _reason(error)) from None
        self.client.wss_uri = str(answer["url"])
        try:
            await self.client.connect()
        except _NETWORK_ERRORS as error:
            raise _Unreachable("the Socket Mode WebSocket", _reason(error)) from None
        self._connected_at = time.monotonic()
        log.info("Slack connected over Socket Mode")

    async def _watch(self, wait: float | None) -> None:
        delay = FIRST_RETRY_S
        if wait is not None:
            await self._sleep(wait)
            delay = min(max(delay, wait) * 2, MAX_RETRY_S)
        while not self._stop.is_set():
            if await self.client.is_connected():
                await self._sleep(WATCH_S)
                continue
            if self._connected_at:
                if time.monotonic() - self._connected_at >= STABLE_S:
                    delay = FIRST_RETRY_S
                self._connected_at = 0.0
                log.warning("Socket Mode: the connection to Slack was lost; reconnecting")
            try:
                await self._connect()
            except TokenRefused as error:
                log.error(
                    "Socket Mode stopped: Slack refused the app-level token (%s); "
                    "fix SLACK_APP_TOKEN and restart",
                    error.code,
                )
                return
            except _Unreachable as error:
                wait = max(delay, error.retry_after)
                log.warning("Socket Mode: cannot connect (%s); retrying in %s", error, _s(wait))
                await self._sleep(wait)
                delay = min(wait * 2, MAX_RETRY_S)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """An envelope to Bolt, its ack back; the envelope id lets a redelivery be recognised."""
        started = time.time()
        headers = dict(build_headers(req) or {})
        headers[ENVELOPE_HEADER] = req.envelope_id
        request = AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=headers)
        response = await self.bolt.async_dispatch(request)
        await send_async_response(client, req, response, started)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _s(seconds: float) -> str:
    return f"{seconds:g}s"
