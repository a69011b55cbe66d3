"""A fake Slack Web API that behaves like Slack, for tests and benchmarks.

It is a Starlette app that keeps a workspace's state (channels, members, messages, pins,
bookmarks, modals, files) and answers as Slack does: HTTP 200 with ``{"ok": false, "error":
...}`` for API errors, Slack's own error codes, form-encoded or JSON bodies, a bearer token, rate
limits with HTTP 429 and ``Retry-After``. Point slack_sdk at it with ``base_url``::

    async with running_fake_slack() as fake:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url)
        await client.conversations_create(name="inc-42")
        assert fake.channel_by_name("inc-42").members

Each call is recorded (`FakeSlack.calls`) and, in strict mode (the default), checked against
Slack's OpenAPI spec and methods.txt (`tests.fakes.slack_spec`): a call with an unknown argument,
a missing required one, or that Slack would accept although it is surely a bug (a reply to a
thread that does not exist), gets HTTP 400 ``fake_slack_strict_violation`` and is kept in
`FakeSlack.client_violations`. Every answer the fake gives is checked too (its error code must be
one Slack lists for the method, a success must match Slack's schema); a mismatch is a bug in the
fake and lands in `FakeSlack.fake_violations`. `FakeSlack.assert_clean` fails on either.

Request pipeline, in Slack's order: parse the body, unknown method (404 ``unknown_method``),
strict argument check, token (``not_authed`` / ``invalid_auth``; an app-level ``xapp-`` token
is good for apps.connections.open only, and only in the Authorization header: any other
token type gets ``not_allowed_token_type``), injected failure, rate limit (429
``ratelimited``), the method's handler.

Socket Mode (`tests.fakes.slack_socket`): apps.connections.open hands out a one-time
``ws://.../socket/<ticket>`` URL served by this same app; tests push envelopes to the connected
app with `FakeSlack.socket_send` and wait for its acks with `FakeSlack.wait_for_ack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes import (
    slack_conversations,
    slack_files,
    slack_messages,
    slack_people,
    slack_socket,
    slack_views,
)
from tests.fakes.slack_calls import HANDLERS, Args, CallContext, ClientMisuse, SlackError
from tests.fakes.slack_files import upload_endpoint
from tests.fakes.slack_limits import Failure, FailurePlan, RateLimiter
from tests.fakes.slack_socket import APP_TOKEN_METHODS, Ack, SocketMode
from tests.fakes.slack_spec import SlackSpec, load_spec
from tests.fakes.slack_state import (
    ALICE,
    APP_TOKEN,
    BOT_TOKEN,
    Channel,
    Ephemeral,
    Message,
    Team,
    View,
    Workspace,
    default_team,
)
from tests.fakes.slack_views import issue_trigger
from tests.fakes.slack_wire import BadBody, ParsedRequest, parse_request

__all__ = [
    "APP_TOKEN",
    "BOT_TOKEN",
    "CallRecord",
    "FakeSlack",
    "FakeSlackHost",
    "ManualClock",
    "create_fake_slack",
    "running_fake_slack",
    "running_fake_slack_host",
    "running_fake_slack_in_thread",
]

# The Web API methods register themselves (`slack_method`) when their module is imported.
METHOD_MODULES = (
    slack_conversations,
    slack_files,
    slack_messages,
    slack_people,
    slack_socket,
    slack_views,
)
STRICT_ERROR = "fake_slack_strict_violation"


class ManualClock:
    """A clock tests move by hand: epoch seconds, starting in November 2023."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class CallRecord:
    """One Web API call as the fake saw and answered it."""

    method: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any]
    time: float
    http_method: str
    content_type: str
    caller: str | None
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.response.get("ok") is True

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


class FakeSlack:
    """The fake's app (`app`), its workspace state, its call record and its test controls."""

    def __init__(
        self,
        *,
        team: Team,
        clock: Callable[[], float],
        rate_limits: bool,
        rate_limit_scale: float,
        failure_rate: float,
        seed: int,
        strict: bool,
        spec: SlackSpec,
    ) -> None:
        self.clock = clock
        self.strict = strict
        self.spec = spec
        self.workspace = Workspace(team, clock=clock, seed=seed)
        tiers = {name: method.tier for name, method in spec.methods.items()}
        self.rate_limiter = RateLimiter(tiers, scale=rate_limit_scale) if rate_limits else None
        self.failures = FailurePlan(failure_rate=failure_rate, seed=seed)
        self.calls: list[CallRecord] = []
        self.client_violations: list[str] = []
        self.fake_violations: list[str] = []
        self._base_url: str | None = None
        self.socket_mode = SocketMode(self.workspace)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._handle, methods=["GET", "POST"]),
                WebSocketRoute("/socket/{ticket}", self.socket_mode.endpoint),
                Route("/upload/v1/{upload_id}", self._upload, methods=["POST"]),
                Route("/response/{hook}", self._response, methods=["POST"]),
            ]
        )
        self.responses: list[dict[str, Any]] = []
        self.latency = 0.0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/`` while a runner serves the fake (for ``base_url=``)."""
        if self._base_url is None:
            raise RuntimeError("the fake is not being served: use running_fake_slack() or a host")
        return self._base_url

    @property
    def is_served(self) -> bool:
        return self._base_url is not None

    def _served_at(self, base_url: str | None) -> None:
        self._base_url = base_url

    # -- test controls -----------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        status: int = 500,
        retry_after: int = 1,
        after_effect: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with HTTP ``status``.

        429 answers ``ratelimited`` with ``Retry-After``; 500 ``internal_error``; 503
        ``service_unavailable``. With ``after_effect`` the call takes effect first and only the
        answer is lost (the client must not repeat a non-idempotent call blindly).
        """
        if status == 429:
            failure = Failure(429, "ratelimited", retry_after, after_effect)
        elif status == 503:
            failure = Failure(503, "service_unavailable", None, after_effect)
        else:
            failure = Failure(status, "internal_error", None, after_effect)
        self.failures.schedule(method, failure, times)

    def response_url(self, hook: str = "cmd") -> str:
        """A ``response_url`` as Slack sends with a command or a click; posts to it are kept."""
        return self.base_url.removesuffix("api/") + f"response/{hook}"

    async def _response(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.responses.append({"hook": request.path_params["hook"], **body})
        return JSONResponse({"ok": True})

    def socket_send(self, envelope_type: str, payload: dict[str, Any], **options: Any) -> str:
        """Push a Socket Mode envelope (``slash_commands``, ``interactive``, ``events_api``) to
        the connected app; returns its envelope_id. From a thread other than the fake's (use
        ``await fake.socket_mode.send_async(...)`` in the fake's own loop)."""
        return self.socket_mode.send(envelope_type, payload, **options)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """The app's first ack of a Socket Mode envelope (TimeoutError if none in time)."""
        return self.socket_mode.wait_for_ack(envelope_id, timeout)

    def issue_trigger_id(self, user: str = ALICE.id, *, view_id: str | None = None) -> str:
        """A trigger_id as Slack sends with a slash command (or a click in modal ``view_id``)."""
        return issue_trigger(self.workspace, user=user, view_id=view_id)

    def post_as_user(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """A message a person posts (not through the API under test)."""
        found = self.channel(channel)
        if user not in found.members:
            raise ValueError(f"{user} is not in {found.name}")
        return self.workspace.add_message(found, user=user, text=text, thread_ts=thread_ts)

    def add_channel(
        self, name: str, *, members: tuple[str, ...] = (), is_private: bool = False
    ) -> Channel:
        """A channel that already exists, created by its first member (else the first person).

        The bot is a member only if ``members`` names it (`BOT_USER_ID`).
        """
        people = [u.id for u in self.workspace.users.values() if not u.is_bot]
        creator = members[0] if members else people[0]
        return self.workspace.create_channel(
            name, creator=creator, is_private=is_private, members=members, announce=False
        )

    def reset_rate_limits(self) -> None:
        if self.rate_limiter is not None:
            self.rate_limiter.reset()

    # -- queries -----------------------------------------------------------------------------

    def channel(self, ref: str) -> Channel:
        """A channel by ID, name or ``#name``; LookupError if there is none."""
        found = self.workspace.channels.get(ref) or self.workspace.channel_named(
            ref.removeprefix("#")
        )
        if found is None:
            raise LookupError(f"no channel {ref!r}")
        return found

    def channel_by_name(self, name: str) -> Channel:
        found = self.workspace.channel_named(name.removeprefix("#"))
        if found is None:
            raise LookupError(f"no channel named {name!r}")
        return found

    def messages(self, channel: str, *, include_system: bool = False) -> list[Message]:
        """Every message in a channel, oldest first, thread replies included (each message
        carries its earlier versions in ``edits`` and its thread in ``replies``)."""
        found = self.channel(channel)
        return [m for m in found.messages.values() if include_system or not m.is_system]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The replies to a message, oldest first."""
        return self.channel(channel).thread(ts)

    def pins(self, channel: str) -> list[Message]:
        found = self.channel(channel)
        return [found.messages[ts] for ts in found.pins]

    def members(self, channel: str) -> list[str]:
        return list(self.channel(channel).members)

    def bookmarks(self, channel: str) -> list[dict[str, Any]]:
        return list(self.channel(channel).bookmarks)

    @property
    def ephemerals(self) -> list[Ephemeral]:
        return list(self.workspace.ephemerals)

    @property
    def views(self) -> list[View]:
        return list(self.workspace.views.values())

    def home(self, user: str) -> View | None:
        """The Home tab views.publish last set for ``user`` (``publishes`` counts them)."""
        return self.workspace.homes.get(user)

    @property
    def lost_replies(self) -> list[Message]:
        return list(self.workspace.lost_replies)

    def calls_to(self, method: str) -> list[CallRecord]:
        return [call for call in self.calls if call.method == method]

    @property
    def calls_by_method(self) -> Counter[str]:
        return Counter(call.method for call in self.calls)

    @property
    def ratelimited_count(self) -> int:
        """How many HTTP 429 answers the fake served (rate limits and injected ones)."""
        return sum(1 for call in self.calls if call.status == 429)

    def assert_clean(self) -> None:
        """Fail if a client broke Slack's spec or the fake gave an answer Slack would not."""
        problems = [f"client: {p}" for p in self.client_violations]
        problems += [f"fake: {p}" for p in self.fake_violations]
        if problems:
            raise AssertionError("Slack spec violations:\n  " + "\n  ".join(problems))

    # -- HTTP --------------------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        return await upload_endpoint(self.workspace, request)

    async def _handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        if self.latency:
            await asyncio.sleep(self.latency)  # a slow Slack: every call takes this long
        now = self.clock()
        try:
            parsed = await parse_request(request)
        except BadBody as exc:
            parsed = ParsedRequest({}, None, request.headers.get("content-type", ""))
            return self._answer(request, method, parsed, None, now, 200, _error(exc.code))
        status, body, headers, caller = self._dispatch(request, method, parsed, now)
        return self._answer(request, method, parsed, caller, now, status, body, headers)

    def _dispatch(
        self, request: Request, method: str, parsed: ParsedRequest, now: float
    ) -> tuple[int, dict[str, Any], dict[str, str], str | None]:
        handler = HANDLERS.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}, {}, None
        if self.strict:
            problems = self.spec.check_request(method, parsed.args)
            if problems:
                return 400, self._strict_violation(problems), {}, None
        if parsed.token is None:
            return 200, _error("not_authed"), {}, None
        problem, caller = self._authenticate(request, method, parsed.token)
        if problem is not None:
            return 200, _error(problem), {}, None
        assert caller is not None
        failure = self.failures.take(method)
        if failure is not None and not failure.after_effect:
            return (*_failure_answer(failure), caller)
        if self.rate_limiter is not None:
            retry_after = self.rate_limiter.acquire(method, self._rate_key(method, parsed), now)
            if retry_after is not None:
                return 429, _error("ratelimited"), {"Retry-After": str(retry_after)}, caller
        context = CallContext(
            workspace=self.workspace,
            caller=caller,
            now=now,
            base_url=str(request.base_url),
            strict=self.strict,
        )
        try:
            body = {"ok": True, **handler.fn(context, Args(parsed.args))}
        except SlackError as exc:
            if exc.code not in handler.errors:
                self.fake_violations.append(f"{method}: raised undeclared error {exc.code!r}")
            body = {"ok": False, "error": exc.code, **exc.extra}
        except ClientMisuse as exc:
            return 400, self._strict_violation([str(exc)]), {}, caller
        except Exception:
            detail = traceback.format_exc()
            self.fake_violations.append(f"{method}: crashed\n{detail}")
            return 500, {"ok": False, "error": "fake_slack_crashed", "detail": detail}, {}, caller
        if failure is not None:
            return (*_failure_answer(failure), caller)
        return 200, body, {}, caller

    def _authenticate(
        self, request: Request, method: str, token: str
    ) -> tuple[str | None, str | None]:
        """(error, caller): a bot or user token for most methods, an app-level one for a few.

        apps.connections.open takes its token from the Authorization header only (Slack's
        method page: a POST parameter "will result in an error").
        """
        team = self.workspace.team
        if method in APP_TOKEN_METHODS:
            if token in team.tokens:
                return "not_allowed_token_type", None
            in_header = request.headers.get("authorization", "").startswith("Bearer ")
            app = team.app_tokens.get(token) if in_header else None
            return (None, app) if app is not None else ("invalid_auth", None)
        if token in team.app_tokens:
            return "not_allowed_token_type", None
        caller = team.tokens.get(token)
        return (None, caller) if caller is not None else ("invalid_auth", None)

    def _rate_key(self, method: str, parsed: ParsedRequest) -> str:
        """chat.postMessage is limited per channel (by ID, however the call named it)."""
        if method != "chat.postMessage":
            return ""
        ref = str(parsed.args.get("channel", ""))
        found = self.workspace.channels.get(ref) or self.workspace.channel_named(
            ref.removeprefix("#")
        )
        return found.id if found else ref

    def _strict_violation(self, problems: list[str]) -> dict[str, Any]:
        self.client_violations.extend(problems)
        return {"ok": False, "error": STRICT_ERROR, "problems": problems}

    def _answer(
        self,
        request: Request,
        method: str,
        parsed: ParsedRequest,
        caller: str | None,
        now: float,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Response:
        headers = {"X-Slack-Req-Id": f"{len(self.calls) + 1:016x}", **(headers or {})}
        if self.strict and body.get("error") not in (STRICT_ERROR, "fake_slack_crashed"):
            self.fake_violations.extend(self.spec.check_response(method, status, body))
        self.calls.append(
            CallRecord(
                method=method,
                args=parsed.args,
                status=status,
                response=body,
                time=now,
                http_method=request.method,
                content_type=parsed.content_type,
                caller=caller,
                headers=headers,
            )
        )
        return JSONResponse(body, status_code=status, headers=headers)


def _error(code: str) -> dict[str, Any]:
    return {"ok": False, "error": code}


def _failure_answer(failure: Failure) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    return failure.status, _error(failure.error), headers


def create_fake_slack(
    *,
    rate_limits: bool = True,
    clock: Callable[[], float] | None = None,
    failure_rate: float = 0.0,
    seed: int = 0,
    rate_limit_scale: float = 1.0,
    strict: bool = True,
    team: Team | None = None,
    spec: SlackSpec | None = None,
) -> FakeSlack:
    """A fake Slack Web API: `FakeSlack.app` is the ASGI app, the rest its state and controls.

    ``clock`` gives epoch seconds (default ``time.time``; tests pass a `ManualClock`); it drives
    rate limits, trigger expiry and message timestamps. ``rate_limit_scale`` > 1 makes rate-limit
    time run that much faster. ``failure_rate`` answers that fraction of calls with a 429 or a 500,
    chosen by a RNG seeded with ``seed`` (which also seeds IDs). ``team`` sets the users, user
    groups, channels and valid tokens (default: `default_team`, token `BOT_TOKEN`).
    """
    return FakeSlack(
        team=team or default_team(),
        clock=clock or time.time,
        rate_limits=rate_limits,
        rate_limit_scale=rate_limit_scale,
        failure_rate=failure_rate,
        seed=seed,
        strict=strict,
        spec=spec or load_spec(),
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the test runner owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit TCP_NODELAY on Linux. Without it, uvicorn's separate writes
    # of headers and body meet the client's delayed ACK: 40 ms per keep-alive request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _server(app: ASGIApp) -> _Server:
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws="wsproto",  # Socket Mode's WebSocket (wsproto: pure Python, a dev dependency)
        timeout_graceful_shutdown=2,
    )
    return _Server(config)


@contextlib.asynccontextmanager
async def running_fake_slack(
    fake: FakeSlack | None = None, **options: Any
) -> AsyncIterator[FakeSlack]:
    """Serve a fake (given, or made from ``options``) on 127.0.0.1 in this event loop.

    ``fake.base_url`` is ``http://127.0.0.1:<port>/api/``, ready for slack_sdk's ``base_url``.
    """
    fake = fake or create_fake_slack(**options)
    sock = _bind_loopback()
    server = _server(fake.app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the fake Slack server stopped while starting")
            await asyncio.sleep(0.005)
        fake._served_at(f"http://127.0.0.1:{sock.getsockname()[1]}/api/")
        yield fake
    finally:
        server.should_exit = True
        await task
        sock.close()
        fake._served_at(None)


@contextlib.contextmanager
def _serving_in_thread(app: ASGIApp) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 from a background thread; yields its base URL."""
    sock = _bind_loopback()
    server = _server(app)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="fake-slack", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake Slack server did not start")
            time.sleep(0.005)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def running_fake_slack_in_thread(
    fake: FakeSlack | None = None, **options: Any
) -> Iterator[FakeSlack]:
    """Serve a fake on 127.0.0.1 from a background thread, for sync clients (``WebClient``)."""
    fake = fake or create_fake_slack(**options)
    with _serving_in_thread(fake.app) as base_url:
        fake._served_at(base_url)
        try:
            yield fake
        finally:
            fake._served_at(None)


class FakeSlackHost:
    """One loopback server that serves one fake at a time.

    Starting and stopping uvicorn costs a few tenths of a second; a test suite can start one host
    (`running_fake_slack_host`) and give each test a fresh fake with `serving`.
    """

    def __init__(self) -> None:
        self.base_url: str | None = None
        self._fake: FakeSlack | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fake = self._fake
        if fake is None:
            response = PlainTextResponse("no fake Slack is being served", status_code=503)
            await response(scope, receive, send)
            return
        await fake.app(scope, receive, send)

    @contextlib.contextmanager
    def serving(self, fake: FakeSlack) -> Iterator[FakeSlack]:
        if self.base_url is None:
            raise RuntimeError("the host is not running")
        self._fake = fake
        fake._served_at(self.base_url)
        try:
            yield fake
        finally:
            self._fake = None
            fake._served_at(None)


@contextlib.contextmanager
def running_fake_slack_host() -> Iterator[FakeSlackHost]:
    """A `FakeSlackHost` served on 127.0.0.1 from a background thread."""
    host = FakeSlackHost()
    with _serving_in_thread(host) as base_url:
        host.base_url = base_url
        yield host
