"""The ``warroom`` command: serve, check the config, migrate, and work incidents without Slack.

Exit status: 0 done; 1 the request was refused (unknown incident, illegal
change: the message says why); 2 bad usage or configuration; 3 the database is
unavailable; 70 an unexpected error (logged with a reference id).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

import bot
from bot.alerts.errors import PayloadError
from bot.alerts.registry import get_parser
from bot.core import Core
from bot.drafts import postmortem_markdown
from bot.errors import ConfigError, StorageUnavailable, UserError
from bot.incidents import Incidents
from bot.intake import Endpoint, IntakeResult, delivery_key
from bot.migrate import current_revision, head_revision, upgrade
from bot.models import FollowUp, Incident, Status, TimelineEvent
from bot.outbox import rows_for
from bot.runbooks import load_configured
from bot.settings import Settings, load_settings
from bot.transcript import transcript_of
from handlers.slack.chat import slack_chat

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
                # Deliver what the change queued (the local transcript without Slack).
                await core.delivery(slack_chat(core)).drain()
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
    app = create_app(settings, socket_mode=socket_mode)
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
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


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--source",
    type=click.Choice(["alertmanager", "grafana", "pagerduty", "datadog", "events"]),
    help="How to read the body (default: the endpoint's source).",
)
@click.option("--endpoint", help="Replay as if posted to this configured endpoint.")
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@pass_ctx
def replay(
    obj: Context, file: str, source: str | None, endpoint: str | None, dry_run: bool
) -> None:
    """Run an alert body through parsing, classification and intake, and say why.

    FILE is a webhook body as the sender posts it (- for standard input).
    """
    settings = obj.settings
    if endpoint is not None and endpoint not in settings.webhooks:
        raise click.BadParameter(
            f"no endpoint {endpoint!r}; configured: {', '.join(settings.webhooks)}",
            param_hint="--endpoint",
        )
    if endpoint is None and source is None:
        raise click.UsageError("give --source TYPE or --endpoint NAME")
    hook = settings.webhooks.get(endpoint or "")
    source = source or (hook.source if hook else None)
    assert source is not None
    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        click.echo(f"error: {file}: malformed JSON: {error}", err=True)
        sys.exit(EXIT_REFUSED)
    try:
        delivery = get_parser(source)(body)
    except PayloadError as error:
        click.echo(f"error: {file}: {error}", err=True)
        sys.exit(EXIT_REFUSED)

    async def run(core: Core) -> IntakeResult:
        click.echo(f"{source}: {len(delivery.alerts)} alert(s), group {delivery.group_key or '-'}")
        for alert in delivery.alerts:
            verdict = core.classifier.classify(alert)
            click.echo(f"  {alert.status.value:<8} {alert.name}  [{alert.fingerprint}]")
            click.echo(f"           severity {verdict.severity}: {verdict.reason}")
            for name, link in sorted(alert.links.items()):
                click.echo(f"           {name}: {link}")
        point = Endpoint(
            name=endpoint or source,
            source=source,
            service=hook.service if hook else None,
            labels=dict(hook.labels) if hook else {},
            group_by=tuple((hook.group_by if hook else None) or settings.intake.group_by),
        )
        return await core.intake.receive(
            point, delivery, delivery_key=delivery_key(raw) + ":replay", dry_run=dry_run
        )

    result = obj.run(run)
    click.echo("what happens:" if not dry_run else "what would happen:")
    for line in result.decisions:
        click.echo(f"  {line}")


@cli.command()
@click.argument("key")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to FILE instead of standard output.",
)
@pass_ctx
def postmortem(obj: Context, key: str, fmt: str, output: str | None) -> None:
    """Draft the post-mortem of incident KEY (Markdown, or HTML for a browser)."""
    text = obj.run(lambda core: postmortem_markdown(core, key))
    if fmt == "html":
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
        text = f"<!doctype html><meta charset='utf-8'><title>{key} post-mortem</title>\n{body}"
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


# -- incidents -----------------------------------------------------------------


@cli.group()
def incident() -> None:
    """Work incidents directly in the store (an operator's way in without Slack)."""


def _incident_command(
    name: str, help_text: str
) -> Callable[[Callable[..., Awaitable[Incident]]], click.Command]:
    """A subcommand whose coroutine changes one incident and then prints it briefly."""

    def decorate(fn: Callable[..., Awaitable[Incident]]) -> click.Command:
        @wraps(fn)
        def command(obj: Context, **kwargs: Any) -> None:
            result = obj.run(lambda core: fn(core.incidents, actor=obj.actor, **kwargs))
            click.echo(_one_line(result))

        command.__doc__ = help_text
        return incident.command(name)(pass_ctx(command))

    return decorate


@incident.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved incidents.")
@click.option("--status", multiple=True, help="Only these statuses (repeatable).")
@click.option("--severity", help="Only this severity.")
@click.option("--service", help="Only this service.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def incident_list(
    obj: Context,
    show_all: bool,
    status: tuple[str, ...],
    severity: str | None,
    service: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List incidents, newest first (open ones unless --all or --status)."""
    found = obj.run(
        lambda core: core.incidents.find(
            statuses=status or None,
            open_only=not show_all and not status,
            severity=severity,
            service=service,
            limit=limit,
        )
    )
    if as_json:
        click.echo(json.dumps([_incident_json(i) for i in found], indent=2))
        return
    if not found:
        click.echo("no incidents" if show_all else "no open incidents (--all shows resolved)")
        return
    for item in found:
        click.echo(_one_line(item))


@incident.command("show")
@click.argument("key")
@click.option("--limit", type=click.IntRange(1, 100_000), help="Only the last N timeline events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def incident_show(obj: Context, key: str, limit: int | None, as_json: bool) -> None:
    """Show an incident, its timeline and its follow-ups."""

    async def load(core: Core) -> tuple[Incident, list[TimelineEvent], list[FollowUp], Any, Any]:
        found = await core.incidents.get(key)
        events = await core.incidents.timeline(key, limit=limit)
        follow_ups = await core.incidents.follow_ups(key)
        assert found.id is not None
        transcript = await transcript_of(core.db, found.id)
        deliveries = await rows_for(core.db, found.id)
        return found, events, follow_ups, transcript, deliveries

    found, events, follow_ups, transcript, deliveries = obj.run(load)
    problems = [d for d in deliveries if d.status == "failed" or (d.last_error and not d.done_at)]
    if as_json:
        data = _incident_json(found)
        data["timeline"] = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "text": e.text,
                "data": e.data,
            }
            for e in events
        ]
        data["follow_ups"] = [
            {"id": f.id, "text": f.text, "owner": f.owner, "status": f.status} for f in follow_ups
        ]
        data["transcript"] = [
            {"at": t.at.isoformat(), "channel": t.channel, "action": t.action, "text": t.text}
            for t in transcript
        ]
        data["deliveries"] = [
            {"kind": d.kind, "status": d.status, "attempts": d.attempts, "error": d.last_error}
            for d in deliveries
        ]
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(_details(found))
    click.echo("\nTimeline (UTC):")
    for event in events:
        click.echo(
            f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:<13} {event.actor:<16} {event.text}"
        )
    if transcript:
        click.echo("\nLocal transcript (Slack is not connected):")
        for entry in transcript:
            text = entry.text.replace("\n", "\n" + " " * 24)
            click.echo(f"  {entry.at:%H:%M:%S} {entry.channel} {entry.action}: {text}")
    if problems:
        click.echo("\nSlack deliveries with problems:")
        for d in problems:
            click.echo(
                f"  #{d.id} {d.kind}: {d.status} after {d.attempts} attempt(s): {d.last_error}"
            )
    if follow_ups:
        click.echo("\nFollow-ups:")
        for f in follow_ups:
            click.echo(
                f"  #{f.id} [{f.status}] {f.text}" + (f" (owner {f.owner})" if f.owner else "")
            )


@incident.command("message")
@click.argument("key")
@click.argument("kind", type=click.Choice(["initial", "update", "resolution"]))
@pass_ctx
def incident_message(obj: Context, key: str, kind: str) -> None:
    """Print the runbook's Initial / Update / Resolution message for an incident."""

    async def render(core: Core) -> str:
        found = await core.incidents.get(key)
        interval = core.incidents.scheme.get(found.severity).update_interval
        next_update = core.clock.now() + interval if found.state.is_open else None
        return core.templates.render(
            f"messages/{kind}.txt.j2",
            incident=found,
            next_update=next_update,
            progress=None,
            impact=None,
            eta=None,
            postmortem_date=None,
        )

    click.echo(obj.run(render))


@_incident_command("declare", "Declare an incident. A person declaring it has acknowledged it.")
@click.argument("title")
@click.option("--severity", "-s", help="Severity, e.g. P1 (default: the scheme's default).")
@click.option("--service", help="Affected service.")
@click.option("--impact", default="", help="User-facing impact.")
@click.option("--summary", default="", help="What is known so far.")
@click.option("--commander", help="Incident commander.")
async def incident_declare(
    incidents: Incidents,
    *,
    actor: str,
    title: str,
    severity: str | None,
    service: str | None,
    impact: str,
    summary: str,
    commander: str | None,
) -> Incident:
    return await incidents.declare(
        title=title,
        actor=actor,
        severity=severity,
        service=service,
        impact=impact,
        summary=summary,
        commander=commander,
    )


@_incident_command("ack", "Acknowledge an incident.")
@click.argument("key")
async def incident_ack(incidents: Incidents, *, actor: str, key: str) -> Incident:
    return await incidents.acknowledge(key, actor=actor)


@_incident_command("sev", "Set the severity (a person's choice wins over automation).")
@click.argument("key")
@click.argument("severity")
@click.option("--reason", default="", help="Why, for the timeline.")
async def incident_sev(
    incidents: Incidents, *, actor: str, key: str, severity: str, reason: str
) -> Incident:
    return await incidents.set_severity(key, severity, actor=actor, reason=reason)


@_incident_command("status", f"Move the incident to STATUS ({', '.join(s.value for s in Status)}).")
@click.argument("key")
@click.argument("status")
@click.option("--note", default="", help="What changed, for the timeline.")
async def incident_status(
    incidents: Incidents, *, actor: str, key: str, status: str, note: str
) -> Incident:
    return await incidents.set_status(key, status, actor=actor, note=note)


@_incident_command("assign", "Give ROLE (commander, communications, …) to USER.")
@click.argument("key")
@click.argument("role")
@click.argument("user")
async def incident_assign(
    incidents: Incidents, *, actor: str, key: str, role: str, user: str
) -> Incident:
    return await incidents.assign(key, role, user, actor=actor)


@_incident_command("note", "Add a note to the timeline.")
@click.argument("key")
@click.argument("text")
async def incident_note(incidents: Incidents, *, actor: str, key: str, text: str) -> Incident:
    return await incidents.note(key, text, actor=actor)


@_incident_command("followup", "Add an action item (follow-up) with an optional owner.")
@click.argument("key")
@click.argument("text")
@click.option("--owner", help="Who will do it.")
async def incident_followup(
    incidents: Incidents, *, actor: str, key: str, text: str, owner: str | None
) -> Incident:
    await incidents.add_follow_up(key, text, actor=actor, owner=owner)
    return await incidents.get(key)


@_incident_command("resolve", "Resolve the incident.")
@click.argument("key")
@click.option("--summary", default="", help="What happened, in a sentence or two.")
@click.option("--root-cause", default="", help="The root cause, if known.")
@click.option("--resolution", default="", help="What fixed it.")
async def incident_resolve(
    incidents: Incidents, *, actor: str, key: str, summary: str, root_cause: str, resolution: str
) -> Incident:
    return await incidents.resolve(
        key, actor=actor, summary=summary, root_cause=root_cause, resolution=resolution
    )


@_incident_command("reopen", "Reopen a resolved incident.")
@click.argument("key")
@click.option("--reason", default="", help="Why, for the timeline.")
async def incident_reopen(incidents: Incidents, *, actor: str, key: str, reason: str) -> Incident:
    return await incidents.reopen(key, actor=actor, reason=reason)


# -- output ----------------------------------------------------------------------


def _one_line(item: Incident) -> str:
    commander = item.commander or "no commander"
    return (
        f"{item.key}  {item.severity:<3} {item.status:<13} {item.title}  "
        f"[{commander}; declared {_when(item.declared_at)}]"
    )


def _details(item: Incident) -> str:
    roles = ", ".join(f"{r}: {u}" for r, u in sorted(item.roles.items())) or "none assigned"
    rows = [
        (item.key, item.title),
        ("Severity", f"{item.severity} ({item.severity_source}: {item.severity_reason})"),
        ("Status", item.status),
        ("Service", item.service or "—"),
        ("Impact", item.impact or "—"),
        ("Summary", item.summary or "—"),
        ("Roles", roles),
        ("Channel", item.channel_name or "— (not in Slack)"),
        ("Detected", _when(item.detected_at)),
        ("Declared", f"{_when(item.declared_at)} by {item.created_by}"),
        (
            "Acknowledged",
            _when(item.acknowledged_at)
            + (f" by {item.acknowledged_by}" if item.acknowledged_by else ""),
        ),
        ("Mitigated", _when(item.mitigated_at)),
        ("Resolved", _when(item.resolved_at)),
    ]
    if item.root_cause:
        rows.append(("Root cause", item.root_cause))
    if item.resolution:
        rows.append(("Resolution", item.resolution))
    return "\n".join(
        f"{label + ':' if i else label:<14}{value}" if i else f"{label}  {value}"
        for i, (label, value) in enumerate(rows)
    )


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _incident_json(item: Incident) -> dict[str, Any]:
    return item.model_dump(mode="json")
