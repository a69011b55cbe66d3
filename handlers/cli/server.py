"""``warroom serve``, ``check-config`` and ``db``: run the bot and look after its store."""

from __future__ import annotations

import gc
import json
import sys

import click

from bot.errors import ConfigError, StorageUnavailable
from bot.runbooks import load_configured
from bot.store.migrate import current_revision, head_revision, upgrade
from handlers.cli.base import (
    EXIT_CONFIG,
    EXIT_STORAGE,
    Context,
    _print_config_problems,
    cli,
    pass_ctx,
)
from handlers.memory import cap_arenas

#: Idle keep-alive connections are closed after this long: longer than the idle timeout of
#: the proxies and client pools in front (AWS ALB 60 s, nginx 75 s, Go's default pool 90 s), so
#: the server does not close a pooled connection just as a request goes out on it (uvicorn's
#: default, 5 s, loses such requests to a reset instead).
KEEP_ALIVE_S = 120


@cli.command()
@click.option("--host", help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: server.port, 8080).")
@click.option(
    "--socket-mode",
    is_flag=True,
    help="Receive Slack events over Socket Mode (needs SLACK_APP_TOKEN) instead of HTTP.",
)
@pass_ctx
def serve(obj: Context, host: str | None, port: int | None, socket_mode: bool) -> None:
    """Run the HTTP server: webhooks, Slack events, pages, /healthz and /readyz."""
    import uvicorn

    from handlers.app import create_app

    obj.quiet = False
    settings = obj.settings
    if socket_mode and settings.slack.app_token is None:
        raise click.UsageError("--socket-mode needs SLACK_APP_TOKEN (an xapp-… app-level token)")
    if socket_mode and settings.slack.bot_token is None:
        raise click.UsageError("--socket-mode needs SLACK_BOT_TOKEN too")
    cap_arenas()  # before any thread: see handlers/memory.py
    app = create_app(settings, socket_mode=socket_mode)
    _tune_gc()
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        # uvicorn's C stack (uvloop's event loop, httptools' HTTP parser): webhooks are
        # answered about 1.5× as fast as on asyncio + h11 (README, "Performance").
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


@cli.command("check-config")
@pass_ctx
def check_config(obj: Context) -> None:
    """Validate the configuration and print it, secrets masked. Exit 2 on any problem."""
    settings = obj.settings
    try:
        books = load_configured(settings.runbooks)
    except ConfigError as error:
        _print_config_problems(error)
        sys.exit(EXIT_CONFIG)
    source = str(settings.config_file) if settings.config_file else "(no file: defaults + env)"
    click.echo(f"# configuration from {source}")
    click.echo(json.dumps(settings.masked(), indent=2))
    click.echo(f"# runbooks: {', '.join(sorted(b.id for b in books))}")
    click.echo("# ok")


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(obj: Context, revision: str) -> None:
    """Apply pending migrations."""
    try:
        before, after = upgrade(obj.settings.database.url, revision)
    except StorageUnavailable as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_STORAGE)
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database migrated: {before or 'empty'} → {after}")


@db.command("current")
@pass_ctx
def db_current(obj: Context) -> None:
    """Print the schema revision of the database and of this version of warroom."""
    try:
        current = current_revision(obj.settings.database.url)
    except StorageUnavailable as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_STORAGE)
    head = head_revision()
    state = "up to date" if current == head else "needs `warroom db upgrade`"
    click.echo(f"database: {current or 'empty'}; code: {head} ({state})")


def _tune_gc() -> None:
    """Move what start-up made (modules, settings, compiled statements) out of the garbage
    collector's view and collect the young generation less often: a storm's requests then
    don't wait for full collections walking ~150 MB of long-lived objects (p99 of new alerts
    into open groups: 136 → 65 ms on SQLite, measured with bench/ingest.lua)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
