"""``warroom replay``: feed a saved webhook body through intake, or explain what it would do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot.core import Core
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.registry import get_parser
from bot.intake.fold import Endpoint, IntakeResult, delivery_key
from handlers.cli.base import EXIT_REFUSED, Context, cli, pass_ctx


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
