"""auth.test, users.* and usergroups.* methods of the fake Slack Web API."""

from __future__ import annotations

from typing import Any

from tests.fakes.slack_calls import Args, CallContext, SlackError, slack_method


@slack_method("auth.test", errors=())
def auth_test(ctx: CallContext, args: Args) -> dict[str, Any]:
    team = ctx.workspace.team
    user = ctx.workspace.users[ctx.caller]
    body: dict[str, Any] = {
        "url": f"https://{team.domain}.slack.com/",
        "team": team.name,
        "user": user.name,
        "team_id": team.id,
        "user_id": user.id,
        "is_enterprise_install": False,
    }
    if user.bot_id:
        body["bot_id"] = user.bot_id
    return body


@slack_method("users.info", errors=("user_not_found",))
def users_info(ctx: CallContext, args: Args) -> dict[str, Any]:
    user = ctx.workspace.users.get(args.string("user"))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user.to_api(ctx.workspace.team.id)}


@slack_method("users.lookupByEmail", errors=("users_not_found",))
def users_lookup_by_email(ctx: CallContext, args: Args) -> dict[str, Any]:
    wanted = args.string("email").strip().lower()
    for user in ctx.workspace.users.values():
        if wanted and user.email is not None and user.email.lower() == wanted and not user.deleted:
            return {"user": user.to_api(ctx.workspace.team.id)}
    raise SlackError("users_not_found")


@slack_method("usergroups.users.list", errors=("no_such_subteam",))
def usergroups_users_list(ctx: CallContext, args: Args) -> dict[str, Any]:
    group = ctx.workspace.usergroups.get(args.string("usergroup"))
    if group is None or (group.disabled and not args.flag("include_disabled")):
        raise SlackError("no_such_subteam")
    return {"users": list(group.users)}
