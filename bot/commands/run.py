"""Run a parsed ``/incident`` command against the core and say what to answer.

The Slack listener parses (``bot.commands.parse.parse``), calls :func:`Dispatcher.run`,
then renders the :class:`Outcome`: an ephemeral text, a public note, or a form
(the declare, update or resolve modal) to open. No Slack here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.commands import parse as c
from bot.core import Core
from bot.errors import InvalidInput, UserError
from bot.incidents.silences import SilencePlan
from bot.incidents.statuspage import ACTIONS, Action, StatusPlan
from bot.runbooks import Runbook
from bot.runbooks.engine import Pending
from bot.runbooks.results import StepResult
from bot.store.models import Incident, TimelineEvent

Form = Literal["update", "resolve", "declare"]


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
    silence: SilencePlan | None = None  # a silence's preview, to confirm
    statuspage: StatusPlan | None = None  # a status page message's preview, to confirm
    mentions: tuple[str, ...] = ()  # user ids ``text`` mentions as <@…> (the rest is escaped)


GroupsOf = Callable[[str], Awaitable[list[str]]]


async def _no_groups(user: str) -> list[str]:
    return []


class Dispatcher:
    def __init__(self, core: Core, *, groups_of: GroupsOf = _no_groups) -> None:
        self.core = core
        self.groups_of = groups_of

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
            case c.Declare("", None, None, None, None):
                return Outcome("", form="declare")  # the declare form, for a title
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
            case c.CancelCmd(run_id):
                cancelled = await self.core.runbooks.cancel(run_id, actor=actor)
                return Outcome(
                    f"Run #{run_id} ({cancelled.title}) cancelled.",
                    key=cancelled.incident,
                    public=True,
                    pending=cancelled,
                )
        key = await self._key(getattr(command, "key", None), channel)
        match command:
            case c.Ack():
                await incidents.acknowledge(key, actor=actor)
                return Outcome(
                    f"{key} acknowledged by <@{actor}>.", key=key, public=True, mentions=(actor,)
                )
            case c.Sev(_, severity, reason):
                done = await incidents.set_severity(key, severity, actor=actor, reason=reason)
                return Outcome(f"{key} is now {done.severity}.", key=key, public=True)
            case c.SetStatus(_, status, note):
                await incidents.set_status(key, status.value, actor=actor, note=note)
                return Outcome(f"{key} is now {status.value}.", key=key, public=True)
            case c.Assign(_, role, user):
                await incidents.assign(key, role, user, actor=actor)
                return Outcome(
                    f"{_who(user)} is {role} of {key}.", key=key, public=True, mentions=(user,)
                )
            case c.Note(_, text):
                await incidents.note(key, text, actor=actor)
                return Outcome(f"Noted on {key}'s timeline.", key=key)
            case c.Timeline(_, limit):
                events = await incidents.timeline(key, limit=limit)
                return Outcome(f"Last {len(events)} events of {key}", key=key, events=tuple(events))
            case c.FollowUp(_, text, owner, tracker):
                tickets = self.core.tickets
                # A named target is checked first: a wrong one changes nothing.
                target = (
                    tickets.check(tracker) if tracker else tickets.policy.settings.default_target
                )
                item = await incidents.add_follow_up(
                    key, text, actor=actor, owner=owner, tracker=tracker
                )
                filing = f" Filing it on {tickets.describe(target)}." if target else ""
                return Outcome(f"Follow-up #{item.id} added to {key}.{filing}", key=key)
            case c.FileFollowUps(_, number, tracker):
                answer = await self.core.tickets.file(key, number, tracker=tracker, actor=actor)
                where = self.core.tickets.describe(answer.target)
                said = []
                if answer.queued:
                    shown = ", ".join(f"#{n}" for n in answer.queued)
                    said.append(f"Filing follow-up(s) {shown} of {key} on {where}.")
                if answer.filed:
                    shown = ", ".join(f"#{n} as {t}" for n, t in answer.filed)
                    said.append(f"Filed already: {shown}; reading their state back now.")
                return Outcome(" ".join(said), key=key)
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
            case c.RunbookCmd():
                books = await self.core.runbooks.matching(key)
                if not books:
                    known = ", ".join(sorted(b.id for b in self.core.runbooks.runbooks))
                    return Outcome(f"No runbook matches {key}'s alerts. Known: {known}.", key=key)
                lines = [_describe(b) for b in books]
                return Outcome("\n".join(lines), key=key, runbooks=tuple(books))
            case c.DiagCmd(_, step, params):
                book, step_id = await self._step(key, step, mitigation=False)
                results = await self.core.runbooks.diagnose(
                    key, book, step_id, params=params, actor=actor
                )
                text = f"{len(results)} diagnostic(s) ran on {key}."
                return Outcome(text, key=key, public=True, results=tuple(results))
            case c.RunCmd(_, step, params):
                book, step_id = await self._step(key, step, mitigation=True)
                assert step_id is not None
                pending = await self.core.runbooks.request(
                    key,
                    book,
                    step_id,
                    params=params,
                    actor=actor,
                    groups=await self.groups_of(actor),
                )
                return Outcome(pending.title, key=key, public=True, pending=pending)
            case c.PostmortemCmd(_, True, target):
                queued = await self.core.exports.request(key, target, actor=actor)
                names = ", ".join(f"`{t}`" for t in queued)
                text = (
                    f"📤 Exporting {key}'s post-mortem to {names}: the link follows here."
                    if queued
                    else f"{key}'s post-mortem export is already queued."
                )
                return Outcome(text, key=key, public=True)
            case c.PostmortemCmd():
                return Outcome("", key=key, public=True, postmortem=True)
            case c.SilenceCmd(_, duration, matchers):
                plan = await self.core.silences.preview(key, duration, matchers)
                return Outcome(f"Silence {key}'s alerts?", key=key, silence=plan)
            case c.StatusPageCmd(_, action, page):
                notice = await self.core.statuspage.preview(
                    key,
                    None if action is None else _statuspage_action(action),
                    page,
                    actor=actor,
                    groups=await self.groups_of(actor),
                )
                return Outcome(
                    f"Publish to the status page `{notice.target}`?", key=key, statuspage=notice
                )
            case c.PageCmd(_, target):
                await self.core.paging.page(key, target, actor=actor)
                return Outcome(f"Paging `{target}` for {key}.", key=key, public=True)
            case c.UnsilenceCmd(_, silence_id):
                ids = await self.core.silences.unsilence(key, actor=actor, silence_id=silence_id)
                shown = ", ".join(f"`{i}`" for i in ids)
                return Outcome(f"Expiring {key}'s silence(s) {shown}.", key=key)
        return Outcome("That command is not available.", key=key)

    async def _step(
        self, key: str, step: str | None, *, mitigation: bool
    ) -> tuple[str, str | None]:
        """(runbook id, step id) for ``runbook.step``, a step of a matched runbook, or none."""
        runbooks = self.core.runbooks
        if step and "." in step:
            book_id, step_id = step.split(".", 1)
            return runbooks.get(book_id).id, step_id
        books = await runbooks.matching(key)
        if step is None:
            if not books:
                raise UserError(
                    f"No runbook matches {key}: name one, e.g. "
                    "`/incident diag db-locks.blocking_pairs`."
                )
            return books[0].id, None
        for book in books + [b for b in runbooks.runbooks if b not in books]:
            steps = book.mitigations if mitigation else book.diagnostics
            if any(s.id == step for s in steps):
                return book.id, step
        what = "mitigation" if mitigation else "diagnostic"
        raise UserError(f"No runbook has a {what} called {step!r}; `/incident runbook` lists them.")

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


def _statuspage_action(word: str) -> Action:
    for action in ACTIONS:
        if action == word:
            return action
    raise InvalidInput(f"`{word[:20]}` is not a status page action: use open, update or resolve.")


def _describe(book: Runbook) -> str:
    diagnostics = ", ".join(f"`{s.id}`" for s in book.diagnostics) or "none"
    mitigations = ", ".join(f"`{s.id}`" for s in book.mitigations) or "none"
    return (
        f"*{book.title}* (`{book.id}`)\n  diagnostics: {diagnostics}\n  mitigations: {mitigations}"
    )


def _who(user: str) -> str:
    return f"<@{user}>" if user[:1] in ("U", "W") and user[1:].isalnum() else user
