"""The ASGI application: ``create_app(settings)`` builds everything in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import bot
from bot.clock import Clock
from bot.config.settings import Settings, mask_url
from bot.core import Core, database
from bot.delivery.quiet import schedule_resolve_offers
from bot.delivery.updates import schedule_reminders
from bot.errors import ConfigError, ConfigProblem, StorageUnavailable
from bot.intake.accept import Acceptor
from bot.intake.alerts.model import Delivery
from bot.intake.batch import Batcher
from bot.intake.fold import Endpoint, Intake, IntakeResult
from bot.intake.folder import Folder
from bot.intake.journal import Journal
from bot.ports.chat import Chat
from bot.store.migrate import upgrade
from handlers import web
from handlers.compose import outside_kinds
from handlers.memory import Trimmer
from handlers.metrics import ROUTES as METRICS_ROUTES
from handlers.metrics import Metrics
from handlers.slack.app import build_bolt
from handlers.slack.chat import SlackChat, slack_chat
from handlers.slack.requests import SlackEvents
from handlers.slack.socket import SocketMode, TokenRefused
from handlers.webhooks import PREFIX as WEBHOOK_PREFIX
from handlers.webhooks import Webhooks
from integrations.alertmanager import alertmanager_silencer
from integrations.paging import configured_pager

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3.0
REMINDER_EVERY_S = 30.0
DRAIN_S = 10.0


ChatFactory = Callable[[Core], Chat | None]


class Background:
    """The delivery worker, the reminder scheduler and work that Slack requests left running."""

    def __init__(self, core: Core, chat: Chat | None) -> None:
        self.core = core
        # The vendor adapters are composed here: bot/ knows only their ports.
        self.worker = core.delivery(
            chat,
            silencer=alertmanager_silencer(core.settings),
            pager=configured_pager(core.settings),
            kinds=outside_kinds(core),
        )
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.requests: set[asyncio.Task[None]] = set()

    def later(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a request's work after its response has gone (a Slack command after its ack)."""
        task = asyncio.create_task(work)
        self.requests.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.requests.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("request work failed", exc_info=error)

    def warm(self, call: Awaitable[object]) -> None:
        """Run a start-up call in the background (e.g. Slack's auth.test) so requests need not."""

        async def run() -> None:
            try:
                await call
            except Exception as error:
                # Slack not reachable yet is no bug: one line, not a traceback.
                reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
                log.warning(
                    "start-up call failed (%s); it will be retried on first use",
                    reason or type(error).__name__,
                )

        self.tasks.append(asyncio.create_task(run()))

    def start(self) -> None:
        self.tasks += [
            asyncio.create_task(self.worker.run_forever(self.stop_event)),
            asyncio.create_task(self._reminders()),
        ]

    async def stop(self) -> None:
        # Requests' work first: it may leave outbox rows for the worker's last round.
        if self.requests:
            _, unfinished = await asyncio.wait(set(self.requests), timeout=DRAIN_S)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        self.stop_event.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _reminders(self) -> None:
        while not self.stop_event.is_set():
            try:
                due = await schedule_reminders(
                    self.core.db, self.core.incidents, self.core.clock.now()
                )
                due += await schedule_resolve_offers(
                    self.core.db,
                    self.core.incidents,
                    self.core.settings.incidents.quiet_for,
                    self.core.clock.now(),
                )
                if due:
                    self.worker.wake.set()
            except StorageUnavailable as error:
                log.warning("reminders paused: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), REMINDER_EVERY_S)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    chat_factory: ChatFactory | None = None,
    socket_mode: bool = False,
) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.database.auto_migrate:
            await asyncio.to_thread(upgrade, settings.database.url)
        core = Core.build(settings, clock=clock)
        app.state.core = core
        app.state.metrics = metrics = Metrics(core)
        chat = chat_factory(core) if chat_factory else slack_chat(core)
        background = Background(core, chat)
        app.state.background = background
        # Deliveries are journaled (one statement per batch of requests), then folded into
        # incidents behind them by one folder per process, in a thread of its own.
        timeout = settings.intake.timeout.total_seconds()
        journal = Journal(core.db, core.clock)
        appender = Batcher(journal, timeout=timeout, max_deliveries=256, max_alerts=20_000)

        def endpoint(name: str, source: str) -> Endpoint:
            hook = app.state.webhooks.endpoints.get(name)
            return hook.endpoint if hook is not None else Endpoint(name=name, source=source)

        def folded(results: Sequence[tuple[Endpoint, Delivery, IntakeResult]]) -> None:
            for where, delivery, result in results:
                metrics.intake(where.source, len(delivery.alerts), result)
            background.worker.wake.set()  # the channels and cards of what was folded

        async def fold_side() -> tuple[Journal, Intake, Callable[[], Awaitable[None]]]:
            db = database(settings, pool_size=2)  # the fold thread's own connections
            side = Journal(db, core.clock)

            async def close() -> None:
                await side.close()
                await db.dispose()

            return side, core.intake_on(db), close

        app.state.folder = folder = Folder(
            journal, core.intake, endpoint, on_folded=folded, busy=appender.recent
        )
        metrics.unfolded.set_function(folder.pending)
        acceptor = Acceptor(appender, folder, fold_wait=min(5.0, timeout / 2))
        background.worker.busy = acceptor.busy  # a storm's commits before its cards
        trimmer = Trimmer(lambda: folder.pending() == 0 and not appender.recent(2.0))
        app.state.webhooks = Webhooks(
            settings,
            acceptor,
            core.cache,
            after_commit=background.worker.wake.set,
            metrics=metrics,
            folds_counted=True,
        )
        app.state.slack = None
        socket = None
        if isinstance(chat, SlackChat):
            chat.on_call = metrics.slack_call
            background.warm(chat.identity())
            bolt = build_bolt(core, chat, wake=background.worker.wake.set, later=background.later)
            secret = settings.slack.signing_secret
            app.state.slack = SlackEvents(bolt, secret.get_secret_value() if secret else None)
            if socket_mode:
                socket = await start_socket_mode(bolt, settings)
        if not settings.slack.connected:
            log.warning(
                "Slack is not connected: running in local mode, messages are kept in the "
                "database. To connect, set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
                "(or SLACK_APP_TOKEN for Socket Mode)."
            )
        log.info("warroom %s ready, database %s", bot.__version__, mask_url(settings.database.url))
        background.start()
        folder.start(fold_side, drain_s=DRAIN_S)  # what a crash left is folded first
        trimmer.start()  # a storm's peak memory handed back once it is folded
        try:
            yield
        finally:
            await trimmer.stop()
            if socket is not None:
                await socket.close()
            await acceptor.close()
            await folder.stop()  # after a drain; what is left is folded at the next start
            await journal.close()
            await background.stop()
            await core.close()

    return App(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/webhooks/{name}", webhook, methods=["POST"]),
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/", home),
            *web.ROUTES,
            *METRICS_ROUTES,
        ],
        lifespan=lifespan,
    )


class App(Starlette):
    """The application, with ``POST /webhooks/<name>`` answered before Starlette's layers.

    In a storm the webhooks are nearly all the traffic and the routing, the middleware and
    the request and response objects cost as much as storing an alert; so those requests go
    straight to :class:`handlers.webhooks.Webhooks` (plain ASGI). Every other request, and
    a webhook before the lifespan has built its endpoints, takes the usual way.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        webhooks: Webhooks | None = getattr(self.state, "webhooks", None)
        if webhooks is not None and scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            name = path.removeprefix(WEBHOOK_PREFIX)
            if path.startswith(WEBHOOK_PREFIX) and name and "/" not in name:
                await webhooks(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def webhook(request: Request) -> Response:
    """``POST /webhooks/<name>`` when :class:`App` did not answer it (before the lifespan)."""
    return JSONResponse(
        {"error": "warroom is starting, retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def slack_events(request: Request) -> Response:
    handler: SlackEvents | None = request.app.state.slack
    if handler is None:
        return JSONResponse(
            {"error": "Slack is not connected: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET"},
            status_code=404,
        )
    return await handler.handle(request)


def _app_token_problem(message: str) -> ConfigError:
    return ConfigError(
        [ConfigProblem(source="environment", key="slack.app_token", message=message)]
    )


async def start_socket_mode(bolt: AsyncApp, settings: Settings) -> SocketMode:
    token = settings.slack.app_token
    if token is None:
        raise _app_token_problem("Socket Mode needs SLACK_APP_TOKEN (xapp-…)")
    app_token = token.get_secret_value()
    if not app_token.startswith("xapp-"):
        raise _app_token_problem(
            "SLACK_APP_TOKEN must be an app-level token (xapp-…, scope connections:write), "
            "not a bot or user token"
        )
    # A refused token stops the start with a clear error; an unreachable Slack is retried
    # with backoff in the background (``handlers.slack.socket``).
    socket = SocketMode(bolt, app_token)
    try:
        await socket.start()
    except TokenRefused as error:
        raise _app_token_problem(
            f"Slack refused the app-level token for Socket Mode ({error.code})"
        ) from None
    return socket


async def home(request: Request) -> Response:
    return RedirectResponse("/incidents", status_code=303)


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok", "version": bot.__version__})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers within a few seconds. Redis is reported, not required."""
    core: Core = request.app.state.core
    redis = await core.cache.status()
    try:
        await asyncio.wait_for(core.db.ping(), READY_TIMEOUT_S)
    except (StorageUnavailable, TimeoutError) as error:
        reason = str(error) or f"no answer within {READY_TIMEOUT_S:g}s"
        body = {"status": "unavailable", "database": reason, "redis": redis}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok", "redis": redis})
