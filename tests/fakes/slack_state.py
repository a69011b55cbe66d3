"""The fake Slack workspace: team, users, user groups, channels, messages, pins, views, files.

Plain data with no HTTP in it. The method handlers change it; tests read it through the query
helpers on `Workspace` (and `FakeSlack`, which forwards to them).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ID_ALPHABET = string.digits + string.ascii_uppercase

TEAM_ID = "T0WARROOM1"
BOT_USER_ID = "U0WARBOT01"
BOT_ID = "B0WARBOT01"
APP_ID = "A0WARROOM1"
BOT_TOKEN = "xoxb-fake-warroom-bot-token"
# An app-level token (Socket Mode's apps.connections.open takes only these).
APP_TOKEN = "xapp-1-A0WARROOM1-1700000000000-fakeappleveltoken"

# Message subtypes Slack writes itself when the channel changes.
SYSTEM_SUBTYPES = frozenset(
    {"channel_join", "channel_topic", "channel_purpose", "channel_archive", "channel_name"}
)


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str
    email: str | None = None
    is_bot: bool = False
    bot_id: str | None = None
    tz: str = "Europe/London"
    deleted: bool = False

    def to_api(self, team_id: str) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "avatar_hash": "g0000000000a",
            "title": "",
            "phone": "",
            "skype": "",
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "fields": {},
            "team": team_id,
            "image_48": "https://a.slack-edge.com/fake-avatar-48.png",
        }
        if self.email is not None:
            profile["email"] = self.email
        if self.bot_id is not None:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": self.deleted,
            "real_name": self.real_name,
            "tz": self.tz,
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
        }


@dataclass(frozen=True)
class UserGroup:
    id: str
    handle: str
    name: str
    users: tuple[str, ...]
    disabled: bool = False


@dataclass(frozen=True)
class ChannelSeed:
    """A channel that exists before the test starts."""

    name: str
    members: tuple[str, ...] = ()
    is_private: bool = False
    is_general: bool = False


@dataclass(frozen=True)
class Team:
    """Who is in the fake workspace, and which tokens are valid.

    ``tokens`` are bot and user tokens (token -> user id); ``app_tokens`` are app-level
    ``xapp-`` tokens (token -> app id), good for apps.connections.open and nothing else.
    """

    id: str
    name: str
    domain: str
    users: tuple[User, ...]
    usergroups: tuple[UserGroup, ...]
    tokens: dict[str, str]
    channels: tuple[ChannelSeed, ...] = ()
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    app_id: str = APP_ID
    app_tokens: dict[str, str] = field(default_factory=dict)


ALICE = User("U0ALICE001", "alice", "Alice Archer", "alice@example.com")
BOB = User("U0BOB00001", "bob", "Bob Baker", "bob@example.com")
CAROL = User("U0CAROL001", "carol", "Carol Chen", "carol@example.com")
DAVE = User("U0DAVE0001", "dave", "Dave Dunn", "dave@example.com")
BOT = User(BOT_USER_ID, "warroom", "Warroom", None, is_bot=True, bot_id=BOT_ID)


def default_team() -> Team:
    humans = (ALICE, BOB, CAROL, DAVE)
    return Team(
        id=TEAM_ID,
        name="Warroom Test",
        domain="warroom-test",
        users=(BOT, *humans),
        usergroups=(
            UserGroup("S0ONCALL01", "oncall", "On-call", (ALICE.id, BOB.id)),
            UserGroup("S0DBA00001", "dba", "Database admins", (CAROL.id,)),
        ),
        tokens={BOT_TOKEN: BOT_USER_ID},
        app_tokens={APP_TOKEN: APP_ID},
        channels=(
            ChannelSeed("general", tuple(u.id for u in humans), is_general=True),
            ChannelSeed("incidents", (ALICE.id, BOB.id, BOT_USER_ID)),
        ),
    )


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    files: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    edited: dict[str, str] | None = None
    # Earlier versions, oldest first: {"text", "blocks", "attachments", "replaced_at"}.
    edits: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def is_system(self) -> bool:
        return self.subtype in SYSTEM_SUBTYPES

    def to_api(self, team_id: str, thread: list[Message] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "text": self.text, "user": self.user}
        if self.subtype:
            body["subtype"] = self.subtype
        body["ts"] = self.ts
        body["team"] = team_id
        if self.bot_id:
            body["bot_id"] = self.bot_id
        if self.app_id:
            body["app_id"] = self.app_id
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.attachments is not None:
            body["attachments"] = self.attachments
        if self.files is not None:
            body["files"] = self.files
            body["upload"] = True
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.edited is not None:
            body["edited"] = dict(self.edited)
        if self.reactions:
            body["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        if thread:
            body["reply_count"] = len(thread)
            body["reply_users"] = list(dict.fromkeys(m.user for m in thread))
            body["reply_users_count"] = len(body["reply_users"])
            body["latest_reply"] = thread[-1].ts
        body.update(self.extra)
        return body


@dataclass
class Pin:
    ts: str
    created: int
    created_by: str


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool
    created: int
    creator: str
    members: dict[str, None] = field(default_factory=dict)
    is_archived: bool = False
    is_general: bool = False
    topic: dict[str, Any] = field(default_factory=lambda: _blank_topic())
    purpose: dict[str, Any] = field(default_factory=lambda: _blank_topic())
    messages: dict[str, Message] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)
    bookmarks: list[dict[str, Any]] = field(default_factory=list)
    previous_names: list[str] = field(default_factory=list)

    def to_api(self, viewer: str, *, num_members: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "created": self.created,
            "creator": self.creator,
            "is_archived": self.is_archived,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "is_member": viewer in self.members,
            "topic": dict(self.topic),
            "purpose": dict(self.purpose),
            "previous_names": list(self.previous_names),
        }
        if num_members:
            body["num_members"] = len(self.members)
        return body

    def thread(self, parent_ts: str) -> list[Message]:
        parent = self.messages.get(parent_ts)
        if parent is None:
            return []
        return [self.messages[ts] for ts in parent.replies]


def _blank_topic() -> dict[str, Any]:
    return {"value": "", "creator": "", "last_set": 0}


@dataclass
class View:
    id: str
    user: str
    body: dict[str, Any]
    hash: str
    root_view_id: str
    previous_view_id: str | None = None
    external_id: str | None = None
    closed: bool = False
    publishes: int = 0  # a Home tab: how many times views.publish set it

    def to_api(self, team_id: str, app_id: str, bot_id: str) -> dict[str, Any]:
        body = {
            "id": self.id,
            "team_id": team_id,
            "type": self.body.get("type", "modal"),
            "blocks": self.body.get("blocks", []),
            "private_metadata": self.body.get("private_metadata", ""),
            "callback_id": self.body.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.hash,
            "clear_on_close": bool(self.body.get("clear_on_close", False)),
            "notify_on_close": bool(self.body.get("notify_on_close", False)),
            "root_view_id": self.root_view_id,
            "previous_view_id": self.previous_view_id,
            "app_id": app_id,
            "external_id": self.external_id or "",
            "bot_id": bot_id,
        }
        for key in ("title", "close", "submit"):
            if key in self.body:
                body[key] = self.body[key]
        return body


@dataclass
class Trigger:
    id: str
    user: str
    issued_at: float
    view_id: str | None = None
    used: bool = False


@dataclass
class FileRecord:
    id: str
    name: str
    length: int
    upload_id: str
    uploader: str
    created: int
    title: str = ""
    alt_txt: str | None = None
    content: bytes | None = None
    completed: bool = False
    shares: list[tuple[str, str]] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": "application/octet-stream",
            "filetype": "binary",
            "user": self.uploader,
            "size": len(self.content or b""),
            "is_public": bool(self.shares),
            "channels": [channel for channel, _ in self.shares],
            "permalink": f"https://files.fake.slack/{self.id}/{self.name}",
        }


@dataclass
class Ephemeral:
    channel: str
    user: str
    ts: str
    text: str
    blocks: list[Any] | None
    thread_ts: str | None


class Workspace:
    """All state of one fake Slack workspace."""

    def __init__(self, team: Team, *, clock: Callable[[], float], seed: int = 0) -> None:
        self.team = team
        self.clock = clock
        self._ids = random.Random(seed)
        self._last_ts_us = 0
        self.users: dict[str, User] = {u.id: u for u in team.users}
        self.usergroups: dict[str, UserGroup] = {g.id: g for g in team.usergroups}
        self.channels: dict[str, Channel] = {}
        self.views: dict[str, View] = {}
        self.homes: dict[str, View] = {}  # each user's App Home tab (views.publish)
        self.triggers: dict[str, Trigger] = {}
        self.files: dict[str, FileRecord] = {}
        self.uploads: dict[str, str] = {}  # upload id -> file id
        self.ephemerals: list[Ephemeral] = []
        self.lost_replies: list[Message] = []
        self.socket_tickets: set[str] = set()  # Socket Mode URLs issued and not yet used
        for seed_channel in team.channels:
            channel = self.create_channel(
                seed_channel.name,
                creator=team.bot_user_id,
                is_private=seed_channel.is_private,
                members=seed_channel.members,
                announce=False,
            )
            channel.is_general = seed_channel.is_general

    # -- identifiers -------------------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 10) -> str:
        return prefix + "".join(self._ids.choice(ID_ALPHABET) for _ in range(length))

    def next_ts(self) -> str:
        """A message timestamp: the clock in microseconds, strictly increasing."""
        now_us = int(self.clock() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds:010d}.{micros:06d}"

    # -- channels ----------------------------------------------------------------------------

    def channel_named(self, name: str) -> Channel | None:
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        return None

    def create_channel(
        self,
        name: str,
        *,
        creator: str,
        is_private: bool = False,
        members: Iterable[str] = (),
        announce: bool = True,
    ) -> Channel:
        channel = Channel(
            id=self.new_id("C"),
            name=name,
            is_private=is_private,
            created=int(self.clock()),
            creator=creator,
        )
        self.channels[channel.id] = channel
        for user in (creator, *members) if announce else members:
            self.join(channel, user, announce=announce)
        return channel

    def join(
        self, channel: Channel, user: str, *, inviter: str | None = None, announce: bool = True
    ) -> None:
        if user in channel.members:
            return
        channel.members[user] = None
        if announce:
            extra = {"inviter": inviter} if inviter and inviter != user else {}
            self.add_message(
                channel,
                user=user,
                text=f"<@{user}> has joined the channel",
                subtype="channel_join",
                extra=extra,
            )

    # -- messages ----------------------------------------------------------------------------

    def add_message(
        self,
        channel: Channel,
        *,
        user: str,
        text: str,
        blocks: list[Any] | None = None,
        attachments: list[Any] | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        files: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        from_bot: bool = False,
        broadcast: bool = False,
    ) -> Message:
        message = Message(
            channel=channel.id,
            ts=self.next_ts(),
            user=user,
            text=text,
            blocks=blocks,
            attachments=attachments,
            thread_ts=thread_ts,
            subtype=subtype,
            files=files,
            extra=dict(extra or {}),
        )
        if from_bot:
            message.bot_id = self.team.bot_id
            message.app_id = self.team.app_id
        if thread_ts is not None:
            parent = channel.messages[thread_ts]
            parent.thread_ts = parent.ts
            parent.replies.append(message.ts)
            message.extra["parent_user_id"] = parent.user
            if broadcast:
                message.subtype = "thread_broadcast"
        channel.messages[message.ts] = message
        return message

    def top_level(self, channel: Channel) -> list[Message]:
        """What conversations.history shows: no thread replies except broadcast ones."""
        return [
            m
            for m in channel.messages.values()
            if not m.is_reply or m.subtype == "thread_broadcast"
        ]
