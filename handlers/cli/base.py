"""The ``warroom`` command group and what every command shares: the context and exit codes.

Exit status: 0 done; 1 the request was refused (unknown incident, illegal
change: the message says why); 2 bad usage or configuration; 3 the database is
unavailable; 70 an unexpected error (logged with a reference id).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

import bot
from bot.config.settings import Settings, load_settings
from bot.core import Core
from bot.errors import ConfigError, StorageUnavailable, UserError
from bot.store.migrate import upgrade
from handlers.compose import outside_kinds
from handlers.slack.chat import slack_chat
from integrations.paging import configured_pager

log = logging.getLogger("warroom")

EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_STORAGE = 3
EXIT_BUG = 70

T = TypeVar("T")


def main() -> None:
    cli(prog_name="warroom")


def _configure_logging(level: str, *, quiet: bool) -> None:
    """Logging is configured here, in the entry point, and nowhere else.

    Commands other than ``serve`` log warnings and errors only, so that their output is
    what they print.
    """
    numeric = logging.getLevelName(level)
    if quiet:
        numeric = max(numeric, logging.WARNING)
    logging.basicConfig(
        level=numeric,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if numeric > logging.DEBUG:
        logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))


class Context:
    def __init__(self, config: str | None, actor: str | None, *, quiet: bool = True) -> None:
        self.config = config
        self.quiet = quiet
        self.actor = actor or f"cli:{_os_user()}"
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config)
            except ConfigError as error:
                _print_config_problems(error)
                sys.exit(EXIT_CONFIG)
            _configure_logging(self._settings.log_level, quiet=self.quiet)
        return self._settings

    def run(self, work: Callable[[Core], Awaitable[T]]) -> T:
        """Run ``work`` against the store, translating errors into messages and exit codes."""
        settings = self.settings

        async def go() -> T:
            if settings.database.auto_migrate:
                await asyncio.to_thread(upgrade, settings.database.url)
            core = Core.build(settings)
            try:
                result = await work(core)
                # Deliver what the change queued (the local transcript without Slack). Pages go
                # out from here too, through the server's pager: the routing keys are set, or
                # the settings would not have loaded. What the pager does not take now (429,
                # 5xx, unreachable) stays in the outbox for the server or the next command.
                await core.delivery(
                    slack_chat(core), pager=configured_pager(settings), kinds=outside_kinds(core)
                ).drain()
                return result
            finally:
                await core.close()

        return _guard(go)


def _guard(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(go())
    except UserError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_REFUSED)
    except ConfigError as error:
        _print_config_problems(error)
        sys.exit(EXIT_CONFIG)
    except StorageUnavailable as error:
        click.echo(f"error: {error}. Check database.url / DATABASE_URL.", err=True)
        sys.exit(EXIT_STORAGE)
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("unexpected error, reference %s", ref)
        click.echo(f"error: something went wrong (reference {ref}); see the log above.", err=True)
        sys.exit(EXIT_BUG)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _print_config_problems(error: ConfigError) -> None:
    click.echo(f"configuration has {len(error.problems)} problem(s):", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(bot.__version__, prog_name="warroom")
@click.option(
    "--config",
    "-c",
    metavar="FILE",
    envvar="WARROOM_CONFIG",
    help="YAML configuration file (default: none; env WARROOM_CONFIG).",
)
@click.option(
    "--as",
    "actor",
    metavar="NAME",
    help="Who is acting, for the timeline (default: cli:<your login>).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None, actor: str | None) -> None:
    """warroom: the incident bot. Alerts open incidents, Slack runs them, the post-mortem drafts
    itself.

    Runs with no configuration on ./incidents.db. Point DATABASE_URL at Postgres to share one
    store between replicas.
    """
    ctx.obj = Context(config, actor)
