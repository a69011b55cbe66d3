"""The Slack implementation of the chat port, over slack_sdk's AsyncWebClient.

slack_sdk's own retries are off: a retried ``chat.postMessage`` whose first attempt
went through would post twice. Errors become the port's: 429 → RateLimited (with
``Retry-After``), 5xx and connection errors → Transient (uncertain for writes),
Slack's ``ok: false`` → Rejected with Slack's code. Each message's first block
carries the outbox marker as its ``block_id``, which is how a retry finds a
message that was posted before a crash.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import Core
from bot.incidents.home import HomeView
from bot.ports.chat import ChannelRef, Message, RateLimited, Rejected, Transient
from handlers.slack import blocks
from handlers.slack.limits import RateGate

log = logging.getLogger(__name__)

_READS = (
    "conversations.list",
    "conversations.history",
    "conversations.replies",
    "auth.test",
    "users.lookupByEmail",
    "usergroups.users.list",
    "chat.getPermalink",
    "users.conversations",
)
_FINE = {"already_in_channel", "already_pinned", "cant_invite_self"}
HISTORY_WINDOW = 100
MEMBER_PAGES = 10  # users.conversations pages read per home (200 channels each)
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


class SlackChat:
    connected = True

    def __init__(self, client: AsyncWebClient, gate: RateGate | None = None) -> None:
        client.retry_handlers = []
        self.client = client
        self.gate = gate or RateGate()
        self._identity: dict[str, Any] | None = None
        #: Told each call's method and outcome (``ok``, ``429``, ``503``, Slack's error code…).
        self.on_call: Callable[[str, str], None] = lambda method, status: None

    async def call(self, method: str, *, channel: str | None = None, **args: Any) -> dict[str, Any]:
        """One Web API call with the port's error semantics."""
        await self.gate.wait(method, channel)
        payload = {k: v for k, v in args.items() if v is not None}
        if channel is not None:
            payload.setdefault("channel", channel)
        try:
            response = await self.client.api_call(method, json=payload)
        except SlackApiError as error:
            status = error.response.status_code
            if status == 429:
                self.on_call(method, "429")
                retry = float(error.response.headers.get("Retry-After", "1") or 1)
                self.gate.back_off(method, channel, retry)
                raise RateLimited(retry, method) from None
            if status >= 500:
                self.on_call(method, str(status))
                raise Transient(
                    f"{method}: HTTP {status}", uncertain=method not in _READS
                ) from None
            code = str(error.response.get("error") or f"http_{status}")
            self.on_call(method, code)
            if code in _FINE:
                return dict(error.response.data) if isinstance(error.response.data, dict) else {}
            raise Rejected(code, method) from None
        except (TimeoutError, aiohttp.ClientError, SlackClientError) as error:
            self.on_call(
                method, "timeout" if isinstance(error, TimeoutError) else "connection_error"
            )
            raise Transient(f"{method}: {error!r}", uncertain=method not in _READS) from None
        self.on_call(method, "ok")
        data = response.data
        return dict(data) if isinstance(data, dict) else {}

    async def identity(self) -> dict[str, Any]:
        """auth.test's answer (bot user and team), asked once per process."""
        if self._identity is None:
            self._identity = await self.call("auth.test")
        return self._identity

    async def bot_user(self) -> str:
        return str((await self.identity())["user_id"])

    async def open_channel(self, name: str, *, private: bool, marker: str) -> ChannelRef:
        try:
            made = await self.call("conversations.create", name=name, is_private=private)
        except Rejected as error:
            if error.code != "name_taken":
                raise
            existing = await self._ours(name)
            if existing is None:
                raise
            log.info("channel #%s already made by warroom: reusing it", name)
            return existing
        channel = made["channel"]
        return ChannelRef(id=str(channel["id"]), name=str(channel["name"]))

    async def _ours(self, name: str) -> ChannelRef | None:
        """The channel called ``name`` if this bot created it (a retry after a crash)."""
        me = await self.bot_user()
        cursor: str | None = None
        while True:
            page = await self.call(
                "conversations.list",
                types="public_channel,private_channel",
                limit=1000,
                cursor=cursor,
            )
            for channel in page.get("channels", []):
                if channel.get("name") == name:
                    if channel.get("creator") != me:
                        return None
                    if not channel.get("is_member", True):
                        await self.call("conversations.join", channel=channel["id"])
                    return ChannelRef(id=str(channel["id"]), name=name)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None

    async def invite(
        self,
        channel: str,
        *,
        users: Sequence[str] = (),
        usergroups: Sequence[str] = (),
        emails: Sequence[str] = (),
    ) -> list[str]:
        people = list(users)
        for group in usergroups:
            found = await self.call("usergroups.users.list", usergroup=group)
            people += [str(u) for u in found.get("users", [])]
        for email in emails:
            try:
                found = await self.call("users.lookupByEmail", email=email)
            except Rejected as error:
                log.warning("cannot invite %s: %s", email, error.code)
                continue
            people.append(str(found["user"]["id"]))
        me = await self.bot_user()
        people = [p for p in dict.fromkeys(people) if p != me]
        if not people:
            return []
        try:
            await self.call("conversations.invite", channel=channel, users=",".join(people))
        except Rejected as error:
            if error.code not in ("user_not_found", "cant_invite"):
                raise
            for person in people:  # one bad id must not keep the others out
                try:
                    await self.call("conversations.invite", channel=channel, users=person)
                except Rejected as single:
                    log.warning("cannot invite %s: %s", person, single.code)
        return people

    async def set_topic(self, channel: str, topic: str) -> None:
        await self.call("conversations.setTopic", channel=channel, topic=topic[:250])

    async def post(
        self, channel: str, message: Message, *, marker: str, thread_ts: str | None = None
    ) -> str:
        body = self._render(message, marker)
        sent = await self.call("chat.postMessage", channel=channel, thread_ts=thread_ts, **body)
        return str(sent["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        body = self._render(message, f"card-{ts}")
        await self.call("chat.update", channel=channel, ts=ts, **body)

    async def pin(self, channel: str, ts: str) -> None:
        await self.call("pins.add", channel=channel, timestamp=ts)

    async def bookmark(self, channel: str, title: str, url: str) -> None:
        await self.call("bookmarks.add", channel_id=channel, title=title, type="link", link=url)

    async def find_marked(
        self, channel: str, marker: str, *, thread_ts: str | None = None
    ) -> str | None:
        if thread_ts:
            history = await self.call(
                "conversations.replies", channel=channel, ts=thread_ts, limit=HISTORY_WINDOW
            )
        else:
            history = await self.call(
                "conversations.history", channel=channel, limit=HISTORY_WINDOW
            )
        for message in history.get("messages", []):
            for block in message.get("blocks") or []:
                if block.get("block_id") == marker:
                    return str(message["ts"])
        return None

    async def permalink(self, channel: str, ts: str) -> str | None:
        found = await self.call("chat.getPermalink", channel=channel, message_ts=ts)
        link = found.get("permalink")
        return str(link) if link else None

    async def member_channels(self, user: str, channels: Sequence[str]) -> set[str]:
        """Which of ``channels`` ``user`` is in (users.conversations: public, and private ones
        the bot is in too, which incident channels are)."""
        wanted = set(channels)
        if not wanted or not _USER_ID.fullmatch(user):
            return set()
        found: set[str] = set()
        cursor: str | None = None
        for _ in range(MEMBER_PAGES):
            try:
                page = await self.call(
                    "users.conversations",
                    user=user,
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=200,
                    cursor=cursor,
                )
            except Rejected as error:
                if error.code != "user_not_found":
                    raise
                return set()
            found |= {str(c.get("id")) for c in page.get("channels", [])} & wanted
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or found == wanted:
                break
        return found

    async def publish_home(self, user: str, home: HomeView) -> bool:
        """views.publish of the Home tab built from ``home``; False for a non-Slack name."""
        if not _USER_ID.fullmatch(user):
            return False
        await self.call("views.publish", user_id=user, view=blocks.home_view(home))
        return True

    def _render(self, message: Message, marker: str) -> dict[str, Any]:
        if message.card is not None and message.reminder_overdue_min is not None:
            rendered = blocks.reminder_blocks(
                message.card, overdue_minutes=message.reminder_overdue_min
            )
        elif message.card is not None:
            rendered = blocks.card_blocks(message.card)
        else:
            rendered = blocks.message_blocks(message.text)
        if rendered:
            rendered[0] = {**rendered[0], "block_id": marker}
        # The top-level text is mrkdwn too (notifications): escaped like the blocks.
        if message.card is not None:
            text = blocks.truncate(blocks.card_text(message.card), 3000)
        else:
            text = blocks.fallback(message.text)
        return {"text": text, "blocks": rendered}


def slack_chat(core: Core) -> SlackChat | None:
    """The Slack chat for ``core``'s settings, or None in local mode (no bot token)."""
    slack = core.settings.slack
    if slack.bot_token is None:
        return None
    client = AsyncWebClient(
        token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=10
    )
    return SlackChat(client, RateGate(core.cache))
