"""Bolt's AsyncApp and its listeners: ack first, call the core, answer in Slack.

One set of listeners serves both transports: HTTP (``POST /slack/events``, signatures
checked by ``requests.SlackEvents`` and Bolt) and Socket Mode (``socket``). A request seen
before (a replay, Slack's retry) is acked and not run again. A user error becomes an
ephemeral message; anything else is logged with a reference id, and the user sees only that id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import httpx
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import parse as commands
from bot.commands.run import Dispatcher, Outcome
from bot.core import Core
from bot.delivery.home import show_home
from bot.drafts import postmortem_markdown
from bot.errors import StorageUnavailable, UserError
from bot.incidents.card import CardView, load_card
from bot.incidents.lifecycle import Change
from bot.incidents.silences import DURATIONS, SilencePlan
from bot.incidents.statuspage import StatusPlan
from bot.ports.chat import ChatError
from bot.postmortem.prefill import ResolvePrefill, load_prefill
from bot.runbooks import text as runbook_text
from bot.runbooks.suggest import suggestion
from handlers.slack import blocks
from handlers.slack.blocks.statuspage import (
    STATUSPAGE,
    STATUSPAGE_CONFIRM,
    STATUSPAGE_RESOLVE,
    statuspage_preview_blocks,
    statuspage_preview_text,
)
from handlers.slack.chat import SlackChat
from handlers.slack.requests import skip_repeats

log = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]
# Runs a request's work after its ack has been answered (``Background.later``).
Later = Callable[[Coroutine[Any, Any, None]], None]
GROUPS_TTL_S = 300.0
SILENCE_CHOICES = tuple(DURATIONS)  # the card's Silence button offers each


class Listeners:
    """Each listener acks, hands its work to ``later`` and returns: Bolt answers Slack then.

    Bolt runs with ``process_before_response=True``, so the HTTP response (or the Socket Mode
    envelope ack) goes out as soon as the listener returns, not after the work.
    """

    def __init__(self, core: Core, chat: SlackChat, wake: Callable[[], None], later: Later) -> None:
        self.core = core
        self.chat = chat
        self.wake = wake
        self.later = later
        self.dispatcher = Dispatcher(core, groups_of=self.groups_of)
        self._members: dict[str, tuple[float, set[str]]] = {}

    # -- /incident ------------------------------------------------------------

    async def command(self, ack: Any, command: dict[str, Any], respond: Respond) -> None:
        await ack()
        self.later(self._command(command, respond))

    async def _command(self, command: dict[str, Any], respond: Respond) -> None:
        actor = command["user_id"]
        channel = command.get("channel_id")
        text = command.get("text", "")
        with _reference() as ref:
            try:
                parsed = commands.parse(text, key_prefix=self.core.incidents.key_prefix)
                outcome = await self.dispatcher.run(parsed, actor=actor, channel=channel)
            except commands.UsageError as error:
                await respond(
                    response_type="ephemeral",
                    text=str(error),
                    blocks=blocks.error_blocks(error.message, error.usage),
                )
                return
            except UserError as error:
                await respond(response_type="ephemeral", text=str(error))
                return
            except StorageUnavailable:
                await respond(response_type="ephemeral", text=_down(ref.id))
                return
            except Exception:
                await respond(response_type="ephemeral", text=_bug(ref.id))
                raise
            await self._answer(outcome, respond, command.get("trigger_id"), actor)
            self.wake()

    async def _answer(
        self, outcome: Outcome, respond: Respond, trigger_id: str | None, actor: str
    ) -> None:
        if outcome.statuspage is not None:
            await self._statuspage_preview(outcome.statuspage, respond)
            return
        if outcome.silence is not None:
            await self._silence_preview(outcome.silence, respond)
            return
        if outcome.results or outcome.pending or outcome.postmortem:
            await self._post_results(outcome)
            return
        if outcome.runbooks and outcome.key is not None:
            steps = [(b.id, s.id, s.title) for b in outcome.runbooks for s in b.diagnostics]
            await respond(
                response_type="ephemeral",
                text=blocks.reply_text(outcome.text, outcome.mentions),
                blocks=blocks.runbook_blocks(outcome.text, outcome.key, steps),
            )
            return
        if outcome.form == "declare":
            await self.open_declare(trigger_id, actor)
            return
        if outcome.form is not None and outcome.key is not None:
            await self.open_form(outcome.form, outcome.key, trigger_id)
            return
        if outcome.events and outcome.key is not None:
            zone = self.core.templates.zone
            await respond(
                response_type="ephemeral",
                text=blocks.reply_text(outcome.text, outcome.mentions),
                blocks=blocks.timeline_blocks(outcome.key, outcome.events, tz=zone),
            )
            return
        if outcome.text.startswith(("Usage", "`/incident")) or "\n" in outcome.text:
            await respond(
                response_type="ephemeral",
                text=blocks.reply_text(outcome.text, outcome.mentions),
                blocks=blocks.help_blocks(outcome.text),
            )
            return
        await respond(
            response_type="ephemeral", text=blocks.reply_text(outcome.text, outcome.mentions)
        )

    async def groups_of(self, user: str) -> list[str]:
        """The user groups named by any runbook permission that ``user`` belongs to.

        Asked of Slack (usergroups.users.list) once per group every five minutes.
        """
        named: set[str] = set()
        for book in self.core.runbooks.runbooks:
            for step in book.mitigations:
                named.update(step.allowed.groups)
        named.update(self.core.statuspage.groups_named())
        for grant in self.core.settings.runbooks.grants.values():
            named.update(grant.groups)
        now = time.monotonic()
        found = []
        for group in sorted(named):
            cached = self._members.get(group)
            if cached is None or now - cached[0] > GROUPS_TTL_S:
                try:
                    answer = await self.chat.call("usergroups.users.list", usergroup=group)
                except ChatError as error:
                    log.warning("cannot list user group %s: %s", group, error)
                    continue
                cached = (now, {str(u) for u in answer.get("users", [])})
                self._members[group] = cached
            if user in cached[1]:
                found.append(group)
        return found

    async def _post_results(self, outcome: Outcome) -> None:
        """Step results, a mitigation's preview, or the post-mortem, posted in the channel."""
        assert outcome.key is not None
        incident = await self.core.incidents.get(outcome.key)
        channel = incident.channel_id
        if channel is None:
            raise UserError(f"{incident.key} has no channel yet; try again in a moment.")
        page = self._page(incident.key)
        for result in outcome.results:
            # The step's graded headline in the channel, its rows in the thread under it.
            head = runbook_text.headline(result)
            posted = await self.chat.call(
                "chat.postMessage",
                channel=channel,
                text=blocks.fallback(head),
                blocks=blocks.message_blocks(head),
            )
            rows = runbook_text.table(result, page_url=page)
            if rows:
                await self.chat.call(
                    "chat.postMessage",
                    channel=channel,
                    thread_ts=posted["ts"],
                    text=blocks.fallback(rows),
                    blocks=blocks.message_blocks(rows),
                )
        if outcome.pending is not None:
            await self.chat.call(
                "chat.postMessage",
                channel=channel,
                text=blocks.pending_fallback(outcome.pending),
                blocks=blocks.pending_blocks(outcome.pending),
            )
        if outcome.postmortem:
            await self._post_postmortem(incident.key, channel)

    async def _post_postmortem(self, key: str, channel: str) -> None:
        markdown = await postmortem_markdown(self.core, key)
        data = markdown.encode()
        name = f"{key}-postmortem.md"
        upload = await self.chat.call("files.getUploadURLExternal", filename=name, length=len(data))
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(upload["upload_url"], content=data)
            answer.raise_for_status()
        page = self._page(key)
        comment = f"Post-mortem draft for {key}" + (f": {page}/postmortem" if page else ".")
        await self.chat.call(
            "files.completeUploadExternal",
            channel_id=channel,
            initial_comment=comment,
            files=[{"id": upload["file_id"], "title": name}],
        )

    def _page(self, key: str) -> str | None:
        base = self.core.settings.server.public_url
        return f"{base.rstrip('/')}/incidents/{key}" if base else None

    async def open_form(self, form: str, key: str, trigger_id: str | None) -> None:
        if not trigger_id:
            raise UserError("Slack sent no trigger id: try the command again.")
        view = await self._card(key)
        if form == "update":
            modal = blocks.update_modal(view, prefill={})
        else:
            drafted = await self._prefill(key)
            modal = blocks.resolve_modal(
                view,
                summary=drafted.summary,
                root_cause=drafted.root_cause,
                resolution=drafted.resolution,
            )
        await self.chat.call("views.open", trigger_id=trigger_id, view=modal)

    async def open_declare(self, trigger_id: str | None, actor: str) -> None:
        """The declare form (``/incident declare`` without a title, the Home tab's button)."""
        if not trigger_id:
            raise UserError("Slack sent no trigger id: try again.")
        scheme = self.core.incidents.scheme
        modal = blocks.declare_modal(
            [(level.name, level.label) for level in scheme.levels],
            scheme.default,
            commander=actor,
        )
        await self.chat.call("views.open", trigger_id=trigger_id, view=modal)

    async def _prefill(self, key: str) -> ResolvePrefill:
        """The resolution the record suggests: the resolve form starts from it."""
        incident = await self.core.incidents.get(key)
        async with self.core.db.transaction(read_only=True) as session:
            return await load_prefill(session, incident)

    async def _card(self, key: str) -> CardView:
        incident = await self.core.incidents.get(key)
        async with self.core.db.transaction(read_only=True) as session:
            return await load_card(session, incident, self.core.incidents.scheme)

    # -- buttons --------------------------------------------------------------

    async def button(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        self.later(self._button(body, action, respond))

    async def _button(self, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        actor = body["user"]["id"]
        action_id = action["action_id"]
        value = action.get("value", "")
        with _reference() as ref:
            try:
                if action_id == blocks.ACK:
                    await self.core.incidents.acknowledge(value, actor=actor)
                elif action_id == blocks.REOPEN:
                    await self.core.incidents.reopen(value, actor=actor)
                elif action_id == blocks.POST_UPDATE:
                    await self.open_form("update", value, body.get("trigger_id"))
                elif action_id in (blocks.RESOLVE, blocks.RESOLVE_NOW):
                    await self.open_form("resolve", value, body.get("trigger_id"))
                elif action_id == blocks.SNOOZE:
                    key, minutes = blocks.parse_snooze(value)
                    await self.core.updates.snooze(key, actor=actor, minutes=minutes)
                    await respond(
                        response_type="ephemeral",
                        replace_original=False,
                        text=f"Reminders for {key} snoozed for {minutes} min.",
                    )
                elif action_id == blocks.SILENCE:
                    plan = await self.core.silences.preview(value, "1h")
                    await self._silence_preview(plan, respond, durations=SILENCE_CHOICES)
                elif action_id in (STATUSPAGE, STATUSPAGE_RESOLVE):
                    notice = await self.core.statuspage.preview(
                        value,
                        "resolve" if action_id == STATUSPAGE_RESOLVE else None,
                        actor=actor,
                        groups=await self.groups_of(actor),
                    )
                    await self._statuspage_preview(notice, respond)
                elif action_id == blocks.UNSILENCE:
                    ids = await self.core.silences.unsilence(value, actor=actor)
                    await respond(
                        response_type="ephemeral",
                        replace_original=False,
                        text=f"Expiring {value}'s silence(s): {', '.join(ids)}.",
                    )
                elif action_id == blocks.RUN_DIAGNOSTICS:
                    results: list[Any] = []
                    for book in await self.core.runbooks.matching(value):
                        results += await self.core.runbooks.diagnose(
                            value, book.id, actor=actor, configured_only=True
                        )
                    if not results:
                        await respond(
                            response_type="ephemeral",
                            replace_original=False,
                            text="No matched runbook has a diagnostic with a configured target.",
                        )
                    await self._post_results(Outcome("", key=value, results=tuple(results)))
            except (UserError, ValueError) as error:
                await respond(response_type="ephemeral", replace_original=False, text=str(error))
            except StorageUnavailable:
                await respond(response_type="ephemeral", replace_original=False, text=_down(ref.id))
            self.wake()

    async def runbook_button(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        self.later(self._runbook_button(body, action, respond))

    async def _runbook_button(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        actor = body["user"]["id"]
        action_id = action["action_id"]
        value = action.get("value", "")
        with _reference() as ref:
            try:
                runbooks = self.core.runbooks
                if action_id.startswith(blocks.RUNBOOK_DIAG):
                    key, book, step = value.split("|", 2)
                    results = await runbooks.diagnose(key, book, step, actor=actor)
                    await self._post_results(Outcome("", key=key, results=tuple(results)))
                elif action_id.startswith(blocks.NEXT_STEP):
                    # A suggested mitigation: the same request (and guard) as /incident run.
                    key, book, step = value.split("|", 2)
                    found = await suggestion(runbooks, key, book, step)
                    pending = await runbooks.request(
                        key,
                        book,
                        step,
                        params=found.params if found is not None else {},
                        actor=actor,
                        groups=await self.groups_of(actor),
                    )
                    await self._post_results(Outcome("", key=key, pending=pending))
                elif action_id == blocks.RUNBOOK_APPROVE:
                    groups = await self.groups_of(actor)
                    pending = await runbooks.approve(int(value), actor=actor, groups=groups)
                    await respond(
                        response_type="in_channel",
                        replace_original=False,
                        text=blocks.approved_text(pending, actor),
                    )
                elif action_id == blocks.RUNBOOK_CONFIRM:
                    pending = await runbooks.pending(int(value))
                    groups = await self.groups_of(actor)
                    result = await runbooks.confirm(int(value), actor=actor, groups=groups)
                    await self._post_results(Outcome("", key=pending.incident, results=(result,)))
                elif action_id == blocks.RUNBOOK_CANCEL:
                    await self._cancel(int(value), actor, body)
            except (UserError, ValueError) as error:
                await respond(response_type="ephemeral", replace_original=False, text=str(error))
            except StorageUnavailable:
                await respond(response_type="ephemeral", replace_original=False, text=_down(ref.id))
            self.wake()

    async def _cancel(self, run_id: int, actor: str, body: dict[str, Any]) -> None:
        """Cancel a pending request: its message loses its buttons and says who cancelled it."""
        cancelled = await self.core.runbooks.cancel(run_id, actor=actor)
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get(
            "channel_id"
        )
        ts = (body.get("message") or {}).get("ts") or body.get("container", {}).get("message_ts")
        if channel and ts:
            await self.chat.call(
                "chat.update",
                channel=channel,
                ts=ts,
                text=blocks.pending_fallback(cancelled),
                blocks=blocks.pending_blocks(cancelled),
            )
        else:
            await self._post_results(Outcome("", key=cancelled.incident, pending=cancelled))

    # -- silences -------------------------------------------------------------

    async def _silence_preview(
        self, plan: SilencePlan, respond: Respond, *, durations: tuple[str, ...] = ()
    ) -> None:
        """Only the person asking sees the preview; its button creates exactly that silence."""
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text=blocks.fallback(blocks.silence_preview_text(plan)),
            blocks=blocks.silence_preview_blocks(plan, durations),
        )

    async def silence_confirmed(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        self.later(self._silence_confirmed(body, action, respond))

    async def _silence_confirmed(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        async def request() -> str:
            plan = SilencePlan.from_token(action.get("value", ""))
            made = await self.core.silences.request(plan, actor=body["user"]["id"])
            return (
                f"Silence of {plan.key} requested ({plan.duration}); "
                "its id goes on the card and the timeline."
                if made
                else "This silence was requested already."
            )

        await self._confirmed(request, respond)

    async def _confirmed(self, request: Callable[[], Awaitable[str]], respond: Respond) -> None:
        """A preview's button pressed: ``request`` makes it so and says what happened, and
        that replaces the preview (its button cannot be pressed twice); a refusal or the store
        being down is said beside it."""
        with _reference() as ref:
            try:
                text = await request()
                await respond(response_type="ephemeral", replace_original=True, text=text)
            except UserError as error:
                await respond(response_type="ephemeral", replace_original=False, text=str(error))
            except StorageUnavailable:
                await respond(response_type="ephemeral", replace_original=False, text=_down(ref.id))
            self.wake()

    # -- the status page ------------------------------------------------------

    async def _statuspage_preview(self, plan: StatusPlan, respond: Respond) -> None:
        """Only the person asking sees the preview: the exact public text and its button."""
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text=blocks.fallback(statuspage_preview_text(plan)),
            blocks=statuspage_preview_blocks(plan),
        )

    async def statuspage_confirmed(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        self.later(self._statuspage_confirmed(body, action, respond))

    async def _statuspage_confirmed(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        async def request() -> str:
            actor = body["user"]["id"]
            made = await self.core.statuspage.request(
                action.get("value", ""), actor=actor, groups=await self.groups_of(actor)
            )
            return (
                "Publishing to the status page; the public link goes on the timeline and "
                "in the channel."
                if made
                else "This status page message was published already."
            )

        await self._confirmed(request, respond)

    # -- modals ---------------------------------------------------------------

    async def update_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        self.later(self._update_submitted(body, view))

    async def _update_submitted(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = blocks.read_update_submission(view["state"]["values"])
        minutes = int(values.get("next_update") or 0)
        with _reference():
            await self.core.updates.post(
                view["private_metadata"],
                actor=body["user"]["id"],
                status=values.get("status") or None,
                progress=values.get("progress", ""),
                impact=values.get("impact", ""),
                eta=values.get("eta", ""),
                next_update_in=timedelta(minutes=minutes) if minutes else None,
            )
        self.wake()

    async def resolve_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        self.later(self._resolve_submitted(body, view))

    async def _resolve_submitted(self, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = blocks.read_resolve_submission(view["state"]["values"])
        with _reference():
            await self.core.incidents.resolve(
                view["private_metadata"],
                actor=body["user"]["id"],
                summary=str(values.get("summary", "")),
                root_cause=str(values.get("root_cause", "")),
                resolution=str(values.get("resolution", "")),
            )
        self.wake()

    async def declare_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            values = blocks.read_declare_submission(
                view["state"]["values"], self.core.incidents.scheme.names
            )
        except ValueError as error:
            await ack(response_action="errors", errors={"title": str(error)})
            return
        await ack()
        self.later(self._declare_submitted(body, values))

    async def _declare_submitted(self, body: dict[str, Any], values: dict[str, str]) -> None:
        actor = body["user"]["id"]
        with _reference():
            await self.core.incidents.declare(
                title=values["title"],
                actor=actor,
                severity=values["severity"] or None,
                service=values["service"] or None,
                impact=values["impact"],
                commander=values["commander"] or actor,
            )
        self.wake()

    # -- App Home -------------------------------------------------------------

    async def home_opened(self, ack: Any, event: dict[str, Any], body: dict[str, Any]) -> None:
        await ack()
        if event.get("tab", "home") == "home" and event.get("user"):
            self.later(self._home_opened(str(event["user"])))

    async def _home_opened(self, user: str) -> None:
        """Published through the outbox: once across replicas, paced per person."""
        with _reference():
            every = self.core.settings.slack.home_refresh
            if await show_home(self.core.db, self.core.clock, user, every=every):
                self.wake()

    async def home_declare(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        await ack()
        self.later(self._home_declare(body))

    async def _home_declare(self, body: dict[str, Any]) -> None:
        with _reference():
            await self.open_declare(body.get("trigger_id"), body["user"]["id"])

    # -- events ---------------------------------------------------------------

    async def reaction(self, ack: Any, event: dict[str, Any], body: dict[str, Any]) -> None:
        await ack()
        self.later(self._reaction(event, body))

    async def _reaction(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """A 📌 on a message in an incident channel puts the message on the timeline."""
        if event.get("reaction") != "pushpin" or event.get("item", {}).get("type") != "message":
            return
        channel = event["item"]["channel"]
        incident = await self.core.incidents.by_channel(channel)
        if incident is None:
            return
        ts = event["item"]["ts"]
        found = await self.chat.call(
            "conversations.history", channel=channel, latest=ts, inclusive=True, limit=1
        )
        messages = found.get("messages") or []
        if not messages:
            return
        message = messages[0]
        link = await self.chat.permalink(channel, ts)
        author = message.get("user") or message.get("bot_id") or "unknown"
        text = f"📌 <@{author}>: {message.get('text', '')}"[:3000]
        data = {"author": author, "ts": ts, "permalink": link, "pinned_by": event.get("user")}
        async with self.core.db.transaction() as session:
            locked = await self.core.incidents.lock(session, incident.id or 0)
            await self.core.incidents.record(
                session, locked, event.get("user", "slack"), [Change("pinned", text, data)]
            )

    async def member_joined(self, ack: Any, event: dict[str, Any], body: dict[str, Any]) -> None:
        await ack()
        self.later(self._member_joined(event, body))

    async def _member_joined(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        incident = await self.core.incidents.by_channel(event.get("channel", ""))
        if incident is None:
            return
        user = event.get("user", "")
        async with self.core.db.transaction() as session:
            locked = await self.core.incidents.lock(session, incident.id or 0)
            await self.core.incidents.record(
                session, locked, user, [Change("joined", f"<@{user}> joined the channel")]
            )


def build_bolt(core: Core, chat: SlackChat, *, wake: Callable[[], None], later: Later) -> AsyncApp:
    slack = core.settings.slack
    assert slack.bot_token is not None
    client = AsyncWebClient(
        token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=10
    )
    token = slack.bot_token.get_secret_value()

    async def authorize(
        enterprise_id: str | None, team_id: str | None, logger: logging.Logger
    ) -> AuthorizeResult:
        # auth.test once per process (warmed at start-up), not on a command's clock.
        me = await chat.identity()
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id or me.get("team_id"),
            bot_token=token,
            bot_id=me.get("bot_id"),
            bot_user_id=me.get("user_id"),
        )

    app = AsyncApp(
        client=client,
        authorize=authorize,
        signing_secret=slack.signing_secret.get_secret_value() if slack.signing_secret else None,
        request_verification_enabled=slack.signing_secret is not None,
        raise_error_for_unhandled_request=False,
        # Answer Slack when the listener returns (right after ack(); the work runs `later`).
        # Bolt's default instead polls every 10 ms for the ack from a task it started.
        process_before_response=True,
    )
    # Replays and retries (same signature, event, envelope, trigger or click) are answered
    # with an empty 200 and not run again; replicas share what they have seen.
    app.use(skip_repeats(core.replay_guard("slack")))
    listen = Listeners(core, chat, wake, later)
    app.command("/incident")(listen.command)
    for action_id in (
        blocks.ACK,
        blocks.REOPEN,
        blocks.POST_UPDATE,
        blocks.RESOLVE,
        blocks.RESOLVE_NOW,
        blocks.SNOOZE,
        blocks.RUN_DIAGNOSTICS,
        blocks.SILENCE,
        blocks.UNSILENCE,
        STATUSPAGE,
        STATUSPAGE_RESOLVE,
    ):
        app.action(action_id)(listen.button)
    app.action(re.compile(rf"^{re.escape(blocks.SILENCE_CONFIRM)}\.[a-z0-9-]+$"))(
        listen.silence_confirmed
    )
    app.action(STATUSPAGE_CONFIRM)(listen.statuspage_confirmed)
    app.action(re.compile(rf"^{re.escape(blocks.RUNBOOK_DIAG)}\.\d+$"))(listen.runbook_button)
    app.action(re.compile(rf"^{re.escape(blocks.NEXT_STEP)}\.\d+$"))(listen.runbook_button)
    app.action(blocks.RUNBOOK_APPROVE)(listen.runbook_button)
    app.action(blocks.RUNBOOK_CONFIRM)(listen.runbook_button)
    app.action(blocks.RUNBOOK_CANCEL)(listen.runbook_button)
    app.view(blocks.UPDATE_MODAL)(listen.update_submitted)
    app.view(blocks.RESOLVE_MODAL)(listen.resolve_submitted)
    app.view(blocks.DECLARE_MODAL)(listen.declare_submitted)
    app.action(blocks.HOME_DECLARE)(listen.home_declare)
    app.event("app_home_opened")(listen.home_opened)
    app.event("reaction_added")(listen.reaction)
    app.event("member_joined_channel")(listen.member_joined)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        ref = uuid.uuid4().hex[:8]
        log.error("slack handler failed, reference %s", ref, exc_info=error)

    return app


class _Ref:
    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:8]

    def __enter__(self) -> _Ref:
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if error is not None and not isinstance(error, UserError | StorageUnavailable):
            log.error("unexpected error, reference %s", self.id, exc_info=error)


def _reference() -> _Ref:
    return _Ref()


def _bug(ref: str) -> str:
    return f"Something went wrong on our side (reference {ref}); it is in the log."


def _down(ref: str) -> str:
    return f"The incident store is unavailable right now; try again shortly (reference {ref})."
