"""``warroom incident …``: list, show, declare and work incidents without Slack."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from typing import Any

import click

from bot.core import Core
from bot.delivery.outbox import rows_for
from bot.delivery.transcript import transcript_of
from bot.incidents.lifecycle import Incidents
from bot.store.models import FollowUp, Incident, Status, TimelineEvent
from handlers.cli.base import Context, cli, pass_ctx


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
