"""views.open / views.update / views.push / views.publish of the fake Slack Web API, trigger ids.

Slack hands an app a ``trigger_id`` with each slash command or interaction; it works once and
for 3 seconds. Tests get one from `issue_trigger` (FakeSlack.issue_trigger_id), as if a user
had just typed a command (or clicked in an open modal, with ``view_id``).

views.publish sets a user's App Home tab: no trigger, one ``home`` view per user (its id stays,
its hash changes with each publish), up to 100 blocks. A modal there, or a home view opened as
a modal, is ``invalid_arguments`` (``views.open`` and ``views.push`` open modals only), and so
is a ``user_id`` that is not a person of the workspace.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.slack_blocks import view_errors
from tests.fakes.slack_calls import Args, CallContext, SlackError, slack_method
from tests.fakes.slack_state import Trigger, View, Workspace

TRIGGER_TTL = 3.0
MAX_VIEW_STACK = 3
MAX_VIEW_BYTES = 250_000


def issue_trigger(ws: Workspace, *, user: str, view_id: str | None = None) -> str:
    trigger = Trigger(
        id=f"{ws.new_id('1', 10)}.{ws.new_id('2', 9)}.{ws.new_id('', 32).lower()}",
        user=user,
        issued_at=ws.clock(),
        view_id=view_id,
    )
    ws.triggers[trigger.id] = trigger
    return trigger.id


def _trigger(ctx: CallContext, args: Args) -> Trigger:
    trigger_id = args.string("trigger_id") or args.string("interactivity_pointer")
    trigger = ctx.workspace.triggers.get(trigger_id)
    if trigger is None:
        raise SlackError("invalid_trigger_id")
    if trigger.used:
        raise SlackError("exchanged_trigger_id")
    if ctx.now - trigger.issued_at > TRIGGER_TTL:
        raise SlackError("expired_trigger_id")
    return trigger


def _view(
    ctx: CallContext,
    args: Args,
    *,
    replacing: View | None = None,
    surfaces: tuple[str, ...] = ("modal",),
    too_large: str = "view_too_large",
) -> dict[str, Any]:
    """The ``view`` argument, checked: invalid_arguments with Slack's messages when malformed."""
    try:
        view = args.decoded("view")
    except ValueError:
        view = "not json"
    problems = view_errors(view, surfaces=surfaces)
    if problems or not isinstance(view, dict):
        raise SlackError(
            "invalid_arguments",
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        raise SlackError(too_large)
    external_id = view.get("external_id")
    if external_id and any(
        v is not replacing and v.external_id == external_id and not v.closed
        for v in ctx.workspace.views.values()
    ):
        raise SlackError("duplicate_external_id")
    return view


def _open(ctx: CallContext, view: dict[str, Any], user: str, parent: View | None) -> View:
    ws = ctx.workspace
    view_id = ws.new_id("V")
    opened = View(
        id=view_id,
        user=user,
        body=view,
        hash=f"{int(ctx.now)}.{ws.new_id('', 8).lower()}",
        root_view_id=parent.root_view_id if parent else view_id,
        previous_view_id=parent.id if parent else None,
        external_id=view.get("external_id") or None,
    )
    ws.views[view_id] = opened
    return opened


def _answer(ctx: CallContext, view: View) -> dict[str, Any]:
    team = ctx.workspace.team
    return {"view": view.to_api(team.id, team.app_id, team.bot_id)}


@slack_method(
    "views.open",
    errors=(
        "invalid_trigger_id",
        "exchanged_trigger_id",
        "expired_trigger_id",
        "invalid_arguments",
        "view_too_large",
        "duplicate_external_id",
    ),
)
def views_open(ctx: CallContext, args: Args) -> dict[str, Any]:
    trigger = _trigger(ctx, args)
    view = _view(ctx, args)
    trigger.used = True
    return _answer(ctx, _open(ctx, view, trigger.user, None))


@slack_method(
    "views.push",
    errors=(
        "invalid_trigger_id",
        "exchanged_trigger_id",
        "expired_trigger_id",
        "invalid_arguments",
        "view_too_large",
        "duplicate_external_id",
        "push_limit_reached",
        "not_found",
    ),
)
def views_push(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    trigger = _trigger(ctx, args)
    parent = ws.views.get(trigger.view_id) if trigger.view_id else None
    if trigger.view_id and (parent is None or parent.closed):
        raise SlackError("not_found")
    if parent is not None:
        stack = [v for v in ws.views.values() if v.root_view_id == parent.root_view_id]
        if len([v for v in stack if not v.closed]) >= MAX_VIEW_STACK:
            raise SlackError("push_limit_reached")
    view = _view(ctx, args)
    trigger.used = True
    return _answer(ctx, _open(ctx, view, trigger.user, parent))


@slack_method(
    "views.update",
    errors=(
        "not_found",
        "hash_conflict",
        "invalid_arguments",
        "view_too_large",
        "duplicate_external_id",
    ),
)
def views_update(ctx: CallContext, args: Args) -> dict[str, Any]:
    ws = ctx.workspace
    target: View | None = None
    if args.present("view_id"):
        target = ws.views.get(args.string("view_id"))
    elif args.present("external_id"):
        wanted = args.string("external_id")
        target = next((v for v in ws.views.values() if v.external_id == wanted), None)
    if target is None or target.closed:
        raise SlackError("not_found")
    if args.present("hash") and args.string("hash") != target.hash:
        raise SlackError("hash_conflict")
    view = _view(ctx, args, replacing=target, surfaces=("modal", "home"))
    target.body = view
    if view.get("external_id"):
        target.external_id = view["external_id"]
    target.hash = f"{int(ctx.now)}.{ws.new_id('', 8).lower()}"
    return _answer(ctx, target)


@slack_method("views.publish", errors=("invalid_arguments",))
def views_publish(ctx: CallContext, args: Args) -> dict[str, Any]:
    """The user's Home tab, replaced whole: the same view id, a new hash."""
    ws = ctx.workspace
    user = ws.users.get(args.string("user_id"))
    if user is None or user.is_bot or user.deleted:
        raise SlackError("invalid_arguments", response_metadata={"messages": ["invalid `user_id`"]})
    # Slack's method page lists no view_too_large for views.publish: too big is invalid.
    view = _view(ctx, args, surfaces=("home",), too_large="invalid_arguments")
    stamp = f"{int(ctx.now)}.{ws.new_id('', 8).lower()}"
    home = ws.homes.get(user.id)
    if home is None:
        view_id = ws.new_id("V")
        home = View(id=view_id, user=user.id, body=view, hash=stamp, root_view_id=view_id)
        ws.homes[user.id] = home
    else:
        home.body, home.hash = view, stamp
    home.publishes += 1
    return _answer(ctx, home)
