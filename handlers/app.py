"""The ASGI application: ``create_app(settings)`` builds everything in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import bot
from bot.clock import Clock
from bot.core import Core
from bot.errors import StorageUnavailable
from bot.migrate import upgrade
from bot.settings import Settings, mask_url
from handlers.webhooks import Webhooks

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3.0


def create_app(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.database.auto_migrate:
            await asyncio.to_thread(upgrade, settings.database.url)
        core = Core.build(settings, clock=clock)
        app.state.core = core
        app.state.webhooks = Webhooks(settings, core.intake, core.cache)
        if not settings.slack.connected:
            log.warning(
                "Slack is not connected: running in local mode, messages are kept in the "
                "database. To connect, set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET "
                "(or SLACK_APP_TOKEN for Socket Mode)."
            )
        log.info("warroom %s ready, database %s", bot.__version__, mask_url(settings.database.url))
        try:
            yield
        finally:
            await core.close()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/webhooks/{name}", webhook, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


async def webhook(request: Request) -> JSONResponse:
    webhooks: Webhooks = request.app.state.webhooks
    return await webhooks.handle(request)


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
