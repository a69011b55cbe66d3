"""conversations.* methods of the fake Slack Web API."""

from __future__ import annotations

import base64
import binascii
import string
from typing import Any

from tests.fakes.slack_calls import Args, CallContext, SlackError, is_ts, slack_method
from tests.fakes.slack_state import Channel, Message

NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_")
MAX_NAME = 80
MAX_TOPIC = 250
MAX_INVITEES = 1000


def channel_name_error(name: str) -> str | None:
    """Slack's error for a bad channel name, or None.

    Lowercase letters, digits, ``-`` and ``_`` only, at most 80 characters, and not only
    punctuation.
    """
    if name == "":
        return "invalid_name_required"
    if len(name) > MAX_NAME:
        return "invalid_name_maxlength"
    if any(char not in NAME_CHARS for char in name):
        return "invalid_name_specials"
    if all(char in "-_" for char in name):
        return "invalid_name_punctuation"
    return None


@slack_method(
    "conversations.create",
    errors=(
        "invalid_name_required",
        "invalid_name_maxlength",
        "invalid_name_specials",
        "invalid_name_punctuation",
        "name_taken",
    ),
)
def conversations_create(ctx: CallContext, args: Args) -> dict[str, Any]:
    name = args.string("name")
    error = channel_name_error(name)
    if error:
        raise SlackError(error)
    if ctx.workspace.channel_named(name) is not None:
        raise SlackError("name_taken")
    channel = ctx.workspace.create_channel(
        name, creator=ctx.caller, is_private=args.flag("is_private")
    )
    return {"channel": channel.to_api(ctx.caller)}


def _writable(ctx: CallContext, channel: Channel) -> None:
    if channel.is_archived:
        raise SlackError("is_archived")
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")


@slack_method(
    "conversations.invite",
    errors=(
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "no_user",
        "too_many_users",
        "user_not_found",
        "cant_invite_self",
        "already_in_channel",
    ),
)
def conversations_invite(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    _writable(ctx, channel)
    users = [u.strip() for u in args.string("users").split(",") if u.strip()]
    if not users:
        raise SlackError("no_user")
    if len(users) > MAX_INVITEES:
        raise SlackError("too_many_users")
    failures: list[dict[str, Any]] = []
    valid: list[str] = []
    for user in dict.fromkeys(users):
        if user not in ctx.workspace.users or ctx.workspace.users[user].deleted:
            code = "user_not_found"
        elif user == ctx.caller:
            code = "cant_invite_self"
        elif user in channel.members:
            code = "already_in_channel"
        else:
            valid.append(user)
            continue
        failures.append({"user": user, "ok": False, "error": code})
    if failures and not (args.flag("force") and valid):
        raise SlackError(failures[0]["error"], errors=failures)
    for user in valid:
        ctx.workspace.join(channel, user, inviter=ctx.caller)
    body: dict[str, Any] = {"channel": channel.to_api(ctx.caller)}
    if failures:
        body["errors"] = failures
    return body


def _set_text_field(ctx: CallContext, args: Args, field: str, subtype: str) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    _writable(ctx, channel)
    value = args.string(field)
    if len(value) > MAX_TOPIC:
        raise SlackError("too_long")
    setattr(
        channel,
        field,
        {"value": value, "creator": ctx.caller, "last_set": int(ctx.now)},
    )
    verb = "topic" if field == "topic" else "description"
    ctx.workspace.add_message(
        channel,
        user=ctx.caller,
        text=f"set the channel {verb}: {value}",
        subtype=subtype,
        extra={field: value},
    )
    return {"channel": channel.to_api(ctx.caller)}


@slack_method(
    "conversations.setTopic",
    errors=("channel_not_found", "is_archived", "not_in_channel", "too_long"),
)
def conversations_set_topic(ctx: CallContext, args: Args) -> dict[str, Any]:
    return _set_text_field(ctx, args, "topic", "channel_topic")


@slack_method(
    "conversations.setPurpose",
    errors=("channel_not_found", "is_archived", "not_in_channel", "too_long"),
)
def conversations_set_purpose(ctx: CallContext, args: Args) -> dict[str, Any]:
    return _set_text_field(ctx, args, "purpose", "channel_purpose")


@slack_method(
    "conversations.archive",
    errors=("channel_not_found", "already_archived", "cant_archive_general", "not_in_channel"),
)
def conversations_archive(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    if channel.is_archived:
        raise SlackError("already_archived")
    if channel.is_general:
        raise SlackError("cant_archive_general")
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")
    ctx.workspace.add_message(
        channel, user=ctx.caller, text="archived the channel", subtype="channel_archive"
    )
    channel.is_archived = True
    return {}


@slack_method("conversations.info", errors=("channel_not_found",))
def conversations_info(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    return {"channel": channel.to_api(ctx.caller, num_members=args.flag("include_num_members"))}


@slack_method(
    "conversations.join",
    errors=("channel_not_found", "is_archived", "method_not_supported_for_channel_type"),
)
def conversations_join(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    if channel.is_private:
        raise SlackError("method_not_supported_for_channel_type")
    if channel.is_archived:
        raise SlackError("is_archived")
    if ctx.caller in channel.members:
        return {
            "channel": channel.to_api(ctx.caller),
            "warning": "already_in_channel",
            "response_metadata": {"warnings": ["already_in_channel"]},
        }
    ctx.workspace.join(channel, ctx.caller)
    return {"channel": channel.to_api(ctx.caller)}


def _page(
    args: Args, total: int, *, default: int, maximum: int, refuse_bad_limit: bool = False
) -> tuple[int, int]:
    """(offset, limit) from the cursor and limit arguments.

    A bad cursor is invalid_cursor. A bad limit is invalid_limit where the method lists that
    error (conversations.members); elsewhere Slack falls back to the default.
    """
    try:
        limit = args.integer("limit")
    except ValueError:
        limit = -1
    if limit is not None and limit < 0 and refuse_bad_limit:
        raise SlackError("invalid_limit")
    if limit is None or limit <= 0:
        limit = default
    limit = min(limit, maximum)
    cursor = args.string("cursor")
    if not cursor:
        return 0, limit
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
        kind, _, number = decoded.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SlackError("invalid_cursor") from None
    if kind != "offset" or not 0 <= offset <= total:
        raise SlackError("invalid_cursor")
    return offset, limit


def _next_cursor(offset: int, limit: int, total: int) -> str:
    if offset + limit >= total:
        return ""
    return base64.b64encode(f"offset:{offset + limit}".encode()).decode()


@slack_method(
    "conversations.members",
    errors=("channel_not_found", "invalid_cursor", "invalid_limit"),
)
def conversations_members(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    members = list(channel.members)
    offset, limit = _page(args, len(members), default=100, maximum=1000, refuse_bad_limit=True)
    return {
        "members": members[offset : offset + limit],
        "response_metadata": {"next_cursor": _next_cursor(offset, limit, len(members))},
    }


def _ts_bound(args: Args, name: str, error: str) -> float | None:
    value = args.string(name)
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise SlackError(error) from None


def _window(args: Args, messages: list[Message]) -> list[Message]:
    oldest = _ts_bound(args, "oldest", "invalid_ts_oldest")
    latest = _ts_bound(args, "latest", "invalid_ts_latest")
    inclusive = args.flag("inclusive")
    kept = []
    for message in messages:
        ts = float(message.ts)
        if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
            continue
        if latest is not None and (ts > latest or (ts == latest and not inclusive)):
            continue
        kept.append(message)
    return kept


@slack_method(
    "conversations.history",
    errors=(
        "channel_not_found",
        "not_in_channel",
        "invalid_cursor",
        "invalid_ts_latest",
        "invalid_ts_oldest",
    ),
)
def conversations_history(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    if ctx.caller not in channel.members:
        raise SlackError("not_in_channel")
    ws = ctx.workspace
    newest_first = list(reversed(_window(args, ws.top_level(channel))))
    offset, limit = _page(args, len(newest_first), default=100, maximum=999)
    page = newest_first[offset : offset + limit]
    cursor = _next_cursor(offset, limit, len(newest_first))
    body: dict[str, Any] = {
        "messages": [m.to_api(ws.team.id, channel.thread(m.ts)) for m in page],
        "has_more": bool(cursor),
        "pin_count": len(channel.pins),
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }
    if cursor:
        body["response_metadata"] = {"next_cursor": cursor}
    return body


@slack_method(
    "conversations.replies",
    errors=(
        "channel_not_found",
        "thread_not_found",
        "invalid_cursor",
        "invalid_ts_latest",
        "invalid_ts_oldest",
    ),
)
def conversations_replies(ctx: CallContext, args: Args) -> dict[str, Any]:
    channel = ctx.channel_by_id(args.string("channel"))
    ts = args.string("ts")
    message = channel.messages.get(ts) if is_ts(ts) else None
    if message is None:
        raise SlackError("thread_not_found")
    if message.is_reply and message.thread_ts is not None:
        parent = channel.messages[message.thread_ts]
    else:
        parent = message
    thread = channel.thread(parent.ts)
    listed = _window(args, [parent, *thread])
    offset, limit = _page(args, len(listed), default=1000, maximum=1000)
    cursor = _next_cursor(offset, limit, len(listed))
    team = ctx.workspace.team.id
    messages = []
    for item in listed[offset : offset + limit]:
        shown = item.to_api(team, thread if item is parent else None)
        if item is parent and thread:
            shown["subscribed"] = False
        messages.append(shown)
    body: dict[str, Any] = {
        "messages": messages,
        "has_more": bool(cursor),
    }
    if cursor:
        body["response_metadata"] = {"next_cursor": cursor}
    return body


@slack_method("conversations.list", errors=("invalid_cursor", "invalid_types"))
def conversations_list(ctx: CallContext, args: Args) -> dict[str, Any]:
    """Public channels, and the private ones the caller is in, as ``types`` asks."""
    wanted = set((args.string("types") or "public_channel").split(","))
    unknown = wanted - {"public_channel", "private_channel", "mpim", "im"}
    if unknown:
        raise SlackError("invalid_types")
    exclude_archived = args.flag("exclude_archived")
    found = [
        channel
        for channel in ctx.workspace.channels.values()
        if ("private_channel" if channel.is_private else "public_channel") in wanted
        and (not channel.is_private or ctx.caller in channel.members)
        and not (exclude_archived and channel.is_archived)
    ]
    offset, limit = _page(args, len(found), default=100, maximum=1000)
    return {
        "channels": [c.to_api(ctx.caller) for c in found[offset : offset + limit]],
        "response_metadata": {"next_cursor": _next_cursor(offset, limit, len(found))},
    }


@slack_method(
    "users.conversations",
    errors=("invalid_cursor", "invalid_limit", "invalid_types", "missing_argument"),
)
def users_conversations(ctx: CallContext, args: Args) -> dict[str, Any]:
    """The channels ``user`` (default: the caller) is a member of, as the caller can see them.

    With a bot token Slack lists only the public channels and the private ones the bot is in
    too; ``types`` defaults to ``public_channel``.
    """
    wanted = set((args.string("types") or "public_channel").split(","))
    if wanted - {"public_channel", "private_channel", "mpim", "im"}:
        raise SlackError("invalid_types")
    user = args.string("user") or ctx.caller
    exclude_archived = args.flag("exclude_archived")
    found = [
        channel
        for channel in ctx.workspace.channels.values()
        if ("private_channel" if channel.is_private else "public_channel") in wanted
        and user in channel.members
        and (not channel.is_private or ctx.caller in channel.members)
        and not (exclude_archived and channel.is_archived)
    ]
    offset, limit = _page(args, len(found), default=100, maximum=1000, refuse_bad_limit=True)
    return {
        "channels": [c.to_api(ctx.caller) for c in found[offset : offset + limit]],
        "response_metadata": {"next_cursor": _next_cursor(offset, limit, len(found))},
    }
