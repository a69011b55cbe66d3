"""Run a parsed ``/incident`` command against the core and say what to answer.

The Slack listener parses (``bot.commands.parse``), calls :func:`Dispatcher.run`,
then renders the :class:`Outcome`: an ephemeral text, a public note, or a form
(the update or resolve modal) to open. No Slack here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot import commands as c
from bot.core import Core
from bot.errors import InvalidInput, UserError
from bot.models import Incident, TimelineEvent
from bot.runbooks import Runbook
from bot.runbooks.engine import Pending
from bot.runbooks.results import StepResult

Form = Literal["update", "resolve"]


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str
    key: str | None = None
    form: Form | None = None
    events: tuple[TimelineEvent, ...] = ()
    public: bool = False
    results: tuple[StepResult, ...] = ()
    pending: Pending | None = None
    runbooks: tuple[Runbook, ...] = ()
    postmortem: bool = False


class Dispatcher:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def run(self, command: c.Command, *, actor: str, channel: str | None) -> Outcome:
        incidents = self.core.incidents
        match command:
            case c.Help(topic):
                return Outcome(c.help_text(topic, key_prefix=incidents.key_prefix))
            case c.List(show_all):
                found = await incidents.find(open_only=not show_all, limit=20)
                if not found:
                    return Outcome("No open incidents." if not show_all else "No incidents.")
                lines = [f"*{i.key}* {i.severity} {i.status}: {i.title}" for i in found]
                return Outcome("\n".join(lines))
            case c.Declare(title, severity, service, impact, commander):
                made = await incidents.declare(
                    title=title,
                    actor=actor,
                    severity=severity,
                    service=service,
                    impact=impact or "",
                    commander=commander or actor,
                )
                return Outcome(
                    f"{made.key} declared ({made.severity}); opening its channel.",
                    key=made.key,
                    public=True,
                )
        key = await self._key(getattr(command, "key", None), channel)
        match command:
            case c.Ack():
                await incidents.acknowledge(key, actor=actor)
                return Outcome(f"{key} acknowledged by <@{actor}>.", key=key, public=True)
            case c.Sev(_, severity, reason):
                done = await incidents.set_severity(key, severity, actor=actor, reason=reason)
                return Outcome(f"{key} is now {done.severity}.", key=key, public=True)
            case c.SetStatus(_, status, note):
                await incidents.set_status(key, status.value, actor=actor, note=note)
                return Outcome(f"{key} is now {status.value}.", key=key, public=True)
            case c.Assign(_, role, user):
                await incidents.assign(key, role, user, actor=actor)
                return Outcome(f"{_who(user)} is {role} of {key}.", key=key, public=True)
            case c.Note(_, text):
                await incidents.note(key, text, actor=actor)
                return Outcome(f"Noted on {key}'s timeline.", key=key)
            case c.Timeline(_, limit):
                events = await incidents.timeline(key, limit=limit)
                return Outcome(f"Last {len(events)} events of {key}", key=key, events=tuple(events))
            case c.FollowUp(_, text, owner):
                item = await incidents.add_follow_up(key, text, actor=actor, owner=owner)
                return Outcome(f"Follow-up #{item.id} added to {key}.", key=key)
            case c.Reopen(_, reason):
                await incidents.reopen(key, actor=actor, reason=reason)
                return Outcome(f"{key} reopened.", key=key, public=True)
            case c.Update():
                await self._open(key)
                return Outcome("", key=key, form="update")
            case c.Resolve(_, summary):
                if summary:
                    await incidents.resolve(key, actor=actor, summary=summary)
                    return Outcome(f"{key} resolved.", key=key, public=True)
                await self._open(key)
                return Outcome("", key=key, form="resolve")
        return Outcome("Runbooks and post-mortems are not available in this version yet.", key=key)

    async def _key(self, given: str | None, channel: str | None) -> str:
        if given:
            return given
        if channel:
            found = await self.core.incidents.by_channel(channel)
            if found is not None:
                return found.key
        raise InvalidInput(
            "This channel is not an incident channel: name the incident, "
            f"e.g. `/incident ack {self.core.incidents.format_key(42)}`."
        )

    async def _open(self, key: str) -> Incident:
        found = await self.core.incidents.get(key)
        if not found.state.is_open:
            raise UserError(f"{found.key} is resolved. Reopen it first with `/incident reopen`.")
        return found


def _describe(book: Runbook) -> str:
    diagnostics = ", ".join(f"`{s.id}`" for s in book.diagnostics) or "none"
    mitigations = ", ".join(f"`{s.id}`" for s in book.mitigations) or "none"
    return (
        f"*{book.title}* (`{book.id}`)\n  diagnostics: {diagnostics}\n  mitigations: {mitigations}"
    )


def _who(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else user
