"""chat.*, pins.*, reactions.* and bookmarks.* methods of the fake Slack Web API.

Every message the fake accepts has its control sequences (``<!channel>``, ``<@U…>``, links…)
recorded, so a test can ask :func:`received_sequences` whether any came from alert text.
"""

from __future__ import annotations

import copy
import re
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.slack_blocks import NOTIFYING, control_sequences, message_block_errors
from tests.fakes.slack_calls import Args, CallContext, ClientMisuse, SlackError, is_ts, slack_method
from tests.fakes.slack_state import Channel, Ephemeral, Message, Pin, Workspace

MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
MAX_BOOKMARKS = 100
EMOJI_NAME = re.compile(r"^[a-z0-9_+'\-]+(::skin-tone-[2-6])?$")

CONTENT_ERRORS = (
    "no_text",
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "too_many_attachments",
    "invalid_arguments",
)


@dataclass
class Content:
    text: str | None
    blocks: list[Any] | None
    attachments: list[Any] | None


@dataclass(frozen=True)
class ReceivedSequence:
    """A control sequence Slack would act on, in a message the fake accepted."""

    method: str
    channel: str
    pointer: str  # where in the call: /text or /blocks/0/text/text…
    sequence: str  # e.g. <!channel>, <@U0ALICE001>, <https://x|label>

    @property
    def notifies(self) -> bool:
        """A broadcast (<!channel>, <!here>, <!everyone>), a user group or a person."""
        return NOTIFYING.match(self.sequence) is not None


_RECEIVED: weakref.WeakKeyDictionary[Workspace, list[ReceivedSequence]] = (
    weakref.WeakKeyDictionary()
)


def received_sequences(workspace: Workspace) -> list[ReceivedSequence]:
    """Every control sequence in the messages posted, updated or sent ephemerally, in order."""
    return list(_RECEIVED.get(workspace, []))


def _record(ctx: CallContext, method: str, channel: str, content: Content) -> None:
    found = control_sequences(content.text, content.blocks)
    if found:
        seen = _RECEIVED.setdefault(ctx.workspace, [])
        seen += [ReceivedSequence(method, channel, p, seq) for p, seq in found]


def _content(ctx: CallContext, args: Args) -> Content:
    """text / blocks / attachments of a message, checked as Slack checks them."""
    text = args.string("text") if args.present("text") else None
    try:
        blocks = args.decoded("blocks")
    except ValueError:
        raise SlackError("invalid_blocks_format") from None
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    try:
        attachments = args.decoded("attachments")
    except ValueError:
        raise SlackError("invalid_arguments") from None
    if attachments is not None and not isinstance(attachments, list):
        raise SlackError("invalid_arguments")
    if not text and not blocks and not attachments:
        raise SlackError("no_text")
    if text is not None and len(text) > MAX_TEXT:
        raise SlackError("msg_too_long")
    if attachments is not None and len(attachments) > MAX_ATTACHMENTS:
        raise SlackError("too_many_attachments")
    if blocks:
        problems = message_block_errors(blocks)
        if problems:
            raise SlackError(
                "invalid_blocks",
                errors=problems,
                response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
            )
        blocks = _with_block_ids(ctx, blocks)
    return Content(text, blocks, attachments)


def _with_block_ids(ctx: CallContext, blocks: list[Any]) -> list[Any]:
    """Slack gives every block without a block_id a short random one."""
    stored = copy.deepcopy(blocks)
    for block in stored:
        block.setdefault("block_id", ctx.workspace.new_id("", 5))
    return stored


def _message(channel: Channel, ts: str) -> Message:
    message = channel.messages.get(ts) if is_ts(ts) else None
    if message is None:
        raise SlackError("message_not_found")
    return message


@slack_method(
    "chat.postMessage",
    errors=("channel_not_found", "is_archived", "not_in_channel", *CONTENT_ERRORS),
)
def chat_post_message(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    channel = ctx.channel(args.string("channel"))
    if channel.is_archived:
        raise SlackError("is_archived")
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")
    content = _content(ctx, args)
    _record(ctx, "chat.postMessage", channel.id, content)
    thread_ts = args.string("thread_ts") or None
    if thread_ts is not None:
        parent = channel.messages.get(thread_ts)
        if parent is None:
            return _lost_reply(ctx, channel, content, thread_ts)
        if parent.is_reply:
            thread_ts = parent.thread_ts
    extra = {k: args.string(k) for k in ("username", "icon_emoji", "icon_url") if args.present(k)}
    metadata = args.raw.get("metadata")
    if metadata is not None:
        extra["metadata"] = metadata
    message = ws.add_message(
        channel,
        user=ctx.caller,
        text=content.text or "",
        blocks=content.blocks,
        attachments=content.attachments,
        thread_ts=thread_ts,
        from_bot=True,
        broadcast=args.flag("reply_broadcast"),
        extra=extra,
    )
    return {"channel": channel.id, "ts": message.ts, "message": message.to_api(ws.team.id)}


def _lost_reply(
    ctx: CallContext, channel: Channel, content: Content, thread_ts: str
) -> dict[str, Any]:
    """A reply to a thread_ts that names no message.

    Slack answers ok and the reply is shown nowhere (a malformed value such as "0" gets
    invalid_thread_ts). In strict mode the fake calls that a client bug instead.
    """
    if ctx.strict:
        raise ClientMisuse(
            f"chat.postMessage: thread_ts {thread_ts!r} names no message in {channel.id}; "
            "Slack would answer ok and nobody would ever see the reply"
        )
    ws = ctx.workspace
    lost = Message(
        channel=channel.id,
        ts=ws.next_ts(),
        user=ctx.caller,
        text=content.text or "",
        blocks=content.blocks,
        attachments=content.attachments,
        thread_ts=thread_ts,
        bot_id=ws.team.bot_id,
        app_id=ws.team.app_id,
    )
    ws.lost_replies.append(lost)
    return {"channel": channel.id, "ts": lost.ts, "message": lost.to_api(ws.team.id)}


@slack_method(
    "chat.update",
    errors=(
        "channel_not_found",
        "message_not_found",
        "cant_update_message",
        "is_inactive",
        *CONTENT_ERRORS,
    ),
)
def chat_update(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    channel = ctx.channel_by_id(args.string("channel"))
    message = _message(channel, args.string("ts"))
    if message.user != ctx.caller or message.is_system:
        raise SlackError("cant_update_message")
    if channel.is_archived:
        raise SlackError("is_inactive")
    content = _content(ctx, args)
    _record(ctx, "chat.update", channel.id, content)
    message.edits.append(
        {
            "text": message.text,
            "blocks": message.blocks,
            "attachments": message.attachments,
            "replaced_at": ctx.now,
        }
    )
    # Slack keeps the blocks / attachments a call leaves out; an empty list removes them.
    if content.text is not None:
        message.text = content.text
    if "blocks" in args.raw:
        message.blocks = content.blocks or None
    if "attachments" in args.raw:
        message.attachments = content.attachments or None
    message.edited = {"user": ctx.caller, "ts": ws.next_ts()}
    return {
        "channel": channel.id,
        "ts": message.ts,
        "text": message.text,
        "message": message.to_api(ws.team.id),
    }


@slack_method(
    "chat.postEphemeral",
    errors=(
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "user_not_in_channel",
        *CONTENT_ERRORS,
    ),
)
def chat_post_ephemeral(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    channel = ctx.channel(args.string("channel"))
    if channel.is_archived:
        raise SlackError("is_archived")
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")
    user = args.string("user")
    if user not in channel.members:
        raise SlackError("user_not_in_channel")
    content = _content(ctx, args)
    _record(ctx, "chat.postEphemeral", channel.id, content)
    ts = ws.next_ts()
    ws.ephemerals.append(
        Ephemeral(
            channel=channel.id,
            user=user,
            ts=ts,
            text=content.text or "",
            blocks=content.blocks,
            thread_ts=args.string("thread_ts") or None,
        )
    )
    return {"message_ts": ts}


@slack_method("chat.getPermalink", errors=("channel_not_found", "message_not_found"))
def chat_get_permalink(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    message = _message(channel, args.string("message_ts"))
    link = (
        f"https://{ctx.workspace.team.domain}.slack.com/archives/{channel.id}"
        f"/p{message.ts.replace('.', '')}"
    )
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


@slack_method(
    "pins.add",
    errors=(
        "channel_not_found",
        "not_in_channel",
        "no_item_specified",
        "bad_timestamp",
        "message_not_found",
        "already_pinned",
    ),
)
def pins_add(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")
    ts = args.string("timestamp")
    if not ts:
        raise SlackError("no_item_specified")
    if not is_ts(ts):
        raise SlackError("bad_timestamp")
    message = _message(channel, ts)
    if ts in channel.pins:
        raise SlackError("already_pinned")
    channel.pins[ts] = Pin(ts=ts, created=int(ctx.now), created_by=ctx.caller)
    message.extra["pinned_to"] = [channel.id]
    return {}


@slack_method("pins.list", errors=("channel_not_found",))
def pins_list(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    team = ctx.workspace.team.id
    items = [
        {
            "type": "message",
            "created": pin.created,
            "created_by": pin.created_by,
            "channel": channel.id,
            "message": channel.messages[pin.ts].to_api(team),
        }
        for pin in reversed(channel.pins.values())
    ]
    return {"items": items}


@slack_method(
    "reactions.add",
    errors=(
        "channel_not_found",
        "is_archived",
        "no_item_specified",
        "bad_timestamp",
        "message_not_found",
        "invalid_name",
        "already_reacted",
    ),
)
def reactions_add(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    if channel.is_archived:
        raise SlackError("is_archived")
    ts = args.string("timestamp")
    if not ts:
        raise SlackError("no_item_specified")
    if not is_ts(ts):
        raise SlackError("bad_timestamp")
    message = _message(channel, ts)
    name = args.string("name")
    if not EMOJI_NAME.match(name):
        raise SlackError("invalid_name")
    users = message.reactions.setdefault(name, [])
    if ctx.caller in users:
        raise SlackError("already_reacted")
    users.append(ctx.caller)
    return {}


def _bookmark_channel(ctx: CallContext, args: Args) -> Channel:
    return ctx.channel_by_id(args.string("channel_id"))


@slack_method(
    "bookmarks.add",
    errors=("channel_not_found", "invalid_bookmark_type", "invalid_link", "too_many_bookmarks"),
)
def bookmarks_add(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    channel = _bookmark_channel(ctx, args)
    if args.string("type") != "link":
        raise SlackError("invalid_bookmark_type")
    link = args.string("link")
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in link:
        raise SlackError("invalid_link")
    if len(channel.bookmarks) >= MAX_BOOKMARKS:
        raise SlackError("too_many_bookmarks")
    bookmark = {
        "id": ws.new_id("Bk", 10),
        "channel_id": channel.id,
        "title": args.string("title"),
        "link": link,
        "emoji": args.string("emoji") or None,
        "icon_url": None,
        "type": "link",
        "entity_id": None,
        "date_created": int(ctx.now),
        "date_updated": 0,
        "rank": chr(ord("a") + len(channel.bookmarks) % 26),
        "last_updated_by_user_id": ctx.caller,
        "last_updated_by_team_id": ws.team.id,
        "shortcut_id": None,
        "app_id": ws.team.app_id,
    }
    channel.bookmarks.append(bookmark)
    return {"bookmark": dict(bookmark)}


@slack_method("bookmarks.list", errors=("channel_not_found",))
def bookmarks_list(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = _bookmark_channel(ctx, args)
    return {"bookmarks": [dict(b) for b in channel.bookmarks]}
