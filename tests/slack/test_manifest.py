"""``slack-app-manifest.yml`` matches the code: its command, events, interactivity and scopes.

The manifest is what an operator pastes into Slack to create the app, so a listener or a Web API
call added without it fails in production with ``missing_scope`` or silence. These tests read
what ``handlers/slack/app.py`` registers with Bolt (by walking its syntax tree), which Web API
methods ``handlers/`` calls (``call("<method>"`` strings), and the bot scopes Slack lists for
each method in the vendored ``methods.txt``; the manifest must grant every scope those need and
no scope nothing needs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from starlette.routing import Route

from bot.commands import parse as commands
from bot.config.settings import Settings
from handlers.app import create_app, slack_events
from tests.fakes import slack_spec

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "slack-app-manifest.yml"
HANDLERS = REPO / "handlers"
BOLT_APP = HANDLERS / "slack" / "app.py"

# Web API methods Bolt calls by itself with the bot token: AsyncApp's single-workspace
# authorize() runs auth.test to learn the bot's ids. (respond() posts to the response_url and
# ack() answers the request: neither is a Web API method.)
BOLT_METHODS: dict[str, str] = {"auth.test": "AsyncApp's authorize() identifies the token"}

# Bot scopes from Slack's method pages (docs.slack.dev/reference/methods/<name>), used for a
# called method that methods.txt does not list. Where methods.txt lists one too, the two must
# agree (test_docs_table_agrees_with_methods_txt), so the table cannot silently go stale.
DOCS_SCOPES: dict[str, tuple[str, ...]] = {
    # warroom lists channels to find one it created before a crash.
    "conversations.list": ("channels:read", "groups:read", "im:read", "mpim:read"),
    # warroom reads recent messages: its own marked posts, and a 📌-reacted message.
    "conversations.history": ("channels:history", "groups:history", "im:history", "mpim:history"),
    # warroom rejoins a public channel it created; only public channels can be joined.
    "conversations.join": ("channels:join",),
    # warroom expands the user groups named in slack.routing.
    "usergroups.users.list": ("usergroups:read",),
    # Socket Mode asks for its WebSocket URL with the app-level token (connections:write,
    # an app-level scope, granted under Basic Information): no bot scope.
    "apps.connections.open": (),
    # The Home tab: "Required scopes: none" (docs.slack.dev/reference/methods/views.publish).
    "views.publish": (),
}

# Scopes an event subscription needs, from Slack's event pages
# (docs.slack.dev/reference/events/<name>). Each inner tuple is one requirement: any of its
# scopes satisfies it.
EVENT_SCOPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # "Required scopes: reactions:read".
    "reaction_added": (("reactions:read",),),
    # "if your app has the channels:read scope, it will receive events for public channels.
    # If it has groups:read, it will receive events for private channels."
    "member_joined_channel": (("channels:read",), ("groups:read",)),
    # "Required scopes: none": Slack sends it once the Home tab is enabled.
    "app_home_opened": (),
}

# Scopes Slack grants only together with another: users:read.email "must be requested at the
# same time as users:read" (docs.slack.dev/reference/scopes/users.read.email).
PREREQUISITES: dict[str, tuple[str, ...]] = {"users:read.email": ("users:read",)}

# Bolt listener kinds that need interactivity on (block actions, modal submissions, shortcuts,
# external select options).
INTERACTIVE = ("action", "view", "shortcut", "options", "block_action", "view_submission")
LISTENER_KINDS = ("command", "event", "message", *INTERACTIVE)

_CALLED = re.compile(r"""\b(?:api_)?call\(\s*["']([a-z]+(?:\.[A-Za-z]+)+)["']""")
# slack_sdk's per-method helpers (client.chat_postMessage(...)) would bypass the scan above.
_SDK_HELPER = re.compile(
    r"\.(?:admin|apps|auth|bookmarks|canvases|chat|conversations|files|pins|reactions|"
    r"usergroups|users|views)_[A-Za-z_]+\("
)
_METHOD_LINE = re.compile(r"^## (?P<name>[\w.]+) \|.*\| bot scopes: (?P<scopes>\[.*\])\s*$")


# -- what the manifest says ----------------------------------------------------------------


@cache
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "the manifest is not a YAML mapping"
    return data


def granted() -> frozenset[str]:
    bot = manifest()["oauth_config"]["scopes"]["bot"]
    assert len(bot) == len(set(bot)), f"a bot scope is listed twice: {sorted(bot)}"
    return frozenset(bot)


def manifest_commands() -> dict[str, dict[str, Any]]:
    return {c["command"]: c for c in manifest()["features"].get("slash_commands") or []}


def request_urls() -> dict[str, str]:
    settings = manifest()["settings"]
    urls = {f"slash command {c}": str(s.get("url")) for c, s in manifest_commands().items()}
    urls["event_subscriptions.request_url"] = str(settings["event_subscriptions"]["request_url"])
    urls["interactivity.request_url"] = str(settings["interactivity"]["request_url"])
    return urls


# -- what the code does --------------------------------------------------------------------


@cache
def listeners() -> dict[str, list[ast.expr]]:
    """The first argument of every ``app.<kind>(...)`` call in handlers/slack/app.py, by kind."""
    found: dict[str, list[ast.expr]] = {kind: [] for kind in LISTENER_KINDS}
    for node in ast.walk(ast.parse(BOLT_APP.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "app"
            and node.func.attr in found
        ):
            assert node.args, f"line {node.lineno}: app.{node.func.attr}() without a constraint"
            found[node.func.attr].append(node.args[0])
    return found


def literal_listeners(kind: str) -> set[str]:
    names = set()
    for arg in listeners()[kind]:
        value = arg.value if isinstance(arg, ast.Constant) else None
        assert isinstance(value, str), (
            f"line {arg.lineno}: app.{kind}() takes {ast.unparse(arg)}; this test reads only "
            "string literals there, so the manifest cannot be checked against it"
        )
        names.add(value)
    return names


def code_commands() -> set[str]:
    return literal_listeners("command")


def code_events() -> set[str]:
    return literal_listeners("event")


@cache
def called_methods() -> dict[str, str]:
    """Every Web API method called by name in handlers/, with where (file:line) it was seen."""
    found: dict[str, str] = {}
    for path in sorted(HANDLERS.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for match in _CALLED.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            found.setdefault(match[1], f"{path.relative_to(REPO)}:{line}")
    for method, why in BOLT_METHODS.items():
        found.setdefault(method, f"Bolt: {why}")
    return found


@cache
def methods_txt() -> dict[str, tuple[str, ...]]:
    """Bot scopes per method, from the vendored methods.txt; a missing file fails the run."""
    path = slack_spec.slack_data_dir() / "methods.txt"
    if not path.is_file():
        pytest.fail(
            f"{path} is missing: the scope checks need Slack's method list "
            "(vendored in tests/data/slack)"
        )
    scopes: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _METHOD_LINE.match(line)
        if match:
            listed = ast.literal_eval(match["scopes"])
            assert isinstance(listed, list), line
            scopes[match["name"]] = tuple(str(s) for s in listed)
    assert len(scopes) > 10, f"read only {len(scopes)} methods from {path}: has its format changed?"
    return scopes


def method_scopes(method: str) -> tuple[str, ...]:
    if method in methods_txt():
        return methods_txt()[method]
    if method in DOCS_SCOPES:
        return DOCS_SCOPES[method]
    pytest.fail(
        f"{method} (called at {called_methods()[method]}) is neither in methods.txt nor in "
        "DOCS_SCOPES: add its bot scopes from Slack's method page to DOCS_SCOPES"
    )


@dataclass(frozen=True)
class Need:
    """One requirement: the manifest must grant at least one of ``any_of``."""

    why: str
    any_of: frozenset[str]


def needs(scopes: Iterable[str]) -> list[Need]:
    """What the code needs granted. ``scopes`` (the grant) only matters for prerequisites.

    A channel method is needed in public channels (a ``channels:*`` scope) and in private
    ones (a ``groups:*`` scope), since incident channels may be either
    (``slack.private_channels``); warroom never works in DMs, so ``im:*``/``mpim:*`` are not.
    """
    result = [Need(f"slash command {c}", frozenset({"commands"})) for c in code_commands()]
    for method in sorted(called_methods()):
        listed = method_scopes(method)
        public = frozenset(s for s in listed if s.startswith("channels:"))
        private = frozenset(s for s in listed if s.startswith("groups:"))
        if public:
            result.append(Need(f"{method} in public channels", public))
        if private:
            result.append(Need(f"{method} in private channels", private))
        if listed and not public and not private:
            result.append(Need(method, frozenset(listed)))
    for event in sorted(code_events()):
        assert event in EVENT_SCOPES, (
            f"the code listens to {event!r}: add the scopes Slack's event page lists for it "
            "to EVENT_SCOPES"
        )
        result += [Need(f"event {event}", frozenset(alt)) for alt in EVENT_SCOPES[event]]
    for scope in sorted(set(scopes)):
        if scope in PREREQUISITES:
            result.append(Need(f"{scope} is granted only with", frozenset(PREREQUISITES[scope])))
    return result


def unmet(scopes: frozenset[str]) -> list[Need]:
    return [need for need in needs(scopes) if not need.any_of & scopes]


# -- the scans see something -----------------------------------------------------------------


def test_the_scans_find_the_code_they_check() -> None:
    # Guards against a rename making every comparison below vacuous.
    assert "/incident" in code_commands()
    assert listeners()["action"]
    assert {"conversations.create", "chat.postMessage", "views.open"} <= set(called_methods())


def test_no_web_api_call_bypasses_the_scan() -> None:
    helpers = [
        f"{path.relative_to(REPO)}: {match[0]}"
        for path in sorted(HANDLERS.rglob("*.py"))
        for match in _SDK_HELPER.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not helpers, f"call Web API methods by name through SlackChat.call: {helpers}"


def test_a_short_methods_txt_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "methods.txt").write_text(
        "## pins.add | Tier 2: 20+ per minute | bot scopes: ['pins:write']\n", encoding="utf-8"
    )
    monkeypatch.setattr(slack_spec, "slack_data_dir", lambda: tmp_path)
    methods_txt.cache_clear()
    try:
        with pytest.raises(AssertionError, match="read only 1 methods"):
            methods_txt()
    finally:
        methods_txt.cache_clear()


def test_a_missing_methods_txt_fails_rather_than_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(slack_spec, "slack_data_dir", lambda: tmp_path)
    methods_txt.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match=r"methods\.txt is missing"):
            methods_txt()
    finally:
        methods_txt.cache_clear()


# -- the manifest ----------------------------------------------------------------------------


def test_manifest_shape() -> None:
    data = manifest()
    assert data["_metadata"] == {"major_version": 1, "minor_version": 1}
    assert data["display_information"]["name"] == "warroom"
    assert len(data["display_information"]["description"]) <= 140  # Slack's limit
    assert data["features"]["bot_user"]["display_name"]  # bot scopes need a bot user
    # warroom runs on one bot token: no user token, no rotation it could not refresh.
    assert set(data["oauth_config"]["scopes"]) == {"bot"}
    assert data["settings"]["token_rotation_enabled"] is False
    assert data["settings"]["org_deploy_enabled"] is False


def test_slash_commands_are_the_registered_ones() -> None:
    assert set(manifest_commands()) == code_commands()


def test_slash_commands_escape_mentions_the_way_the_parser_reads_them() -> None:
    for name, command in manifest_commands().items():
        assert command["should_escape"] is True, f"{name}: mentions would arrive as @name"
        assert command["description"]
    # What escaping delivers is what the parser turns into a user id.
    assert commands.parse_mention("<@U012ABC|alice>") == "U012ABC"


def test_bot_events_are_the_events_the_code_listens_to() -> None:
    bot_events = manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert len(bot_events) == len(set(bot_events))
    assert set(bot_events) == code_events()
    assert not listeners()["message"], (
        "app.message() needs message.channels / message.groups in bot_events and their "
        "history scopes: add them to the manifest and to this test"
    )


def test_the_home_tab_is_on_exactly_when_the_code_publishes_it() -> None:
    home = manifest()["features"].get("app_home") or {}
    listens = "app_home_opened" in code_events()
    assert home.get("home_tab_enabled", False) is listens
    assert ("views.publish" in called_methods()) is listens
    # Without a Messages tab, nobody can write to the bot: it has no DM listener.
    assert home.get("messages_tab_enabled", True) is False


def test_interactivity_is_on_exactly_when_the_code_has_actions_or_views() -> None:
    interactive = any(listeners()[kind] for kind in INTERACTIVE)
    assert manifest()["settings"]["interactivity"]["is_enabled"] is interactive


def test_request_urls_point_at_the_slack_route() -> None:
    app = create_app(Settings.model_construct())  # routes only: the lifespan does not run
    (route,) = [r for r in app.routes if isinstance(r, Route) and r.endpoint is slack_events]
    assert route.methods is not None
    assert "POST" in route.methods
    assert route.path == "/slack/events"
    # HTTP mode: Slack needs every request URL; Socket Mode would drop them (see the manifest).
    assert manifest()["settings"]["socket_mode_enabled"] is False
    for what, url in request_urls().items():
        parts = urlsplit(url)
        assert parts.scheme == "https", f"{what}: Slack only sends to https URLs, got {url}"
        assert parts.path == route.path, f"{what}: {url} is not warroom's {route.path}"
        assert url.endswith("/slack/events")


# -- scopes ----------------------------------------------------------------------------------


def test_docs_table_agrees_with_methods_txt() -> None:
    for method, scopes in DOCS_SCOPES.items():
        if method in methods_txt():
            assert set(methods_txt()[method]) == set(scopes), method


def test_every_called_method_has_a_granted_scope() -> None:
    scopes = granted()
    for method in called_methods():
        listed = method_scopes(method)
        assert not listed or set(listed) & scopes, (
            f"{method} ({called_methods()[method]}) needs one of {listed}"
        )


def test_every_need_is_granted() -> None:
    missing = [f"{n.why}: one of {sorted(n.any_of)}" for n in unmet(granted())]
    assert not missing, "the manifest lacks scopes:\n" + "\n".join(missing)


def test_no_scope_is_unused() -> None:
    """Each scope is the only one granted for something: a method, an event, a command."""
    scopes = granted()
    assert not unmet(scopes)
    spare = sorted(s for s in scopes if not unmet(scopes - {s}))
    assert not spare, f"nothing the code calls or listens to needs {spare}: remove them"


def test_the_scope_checks_catch_a_missing_and_a_spare_scope() -> None:
    scopes = granted()
    assert [n.why for n in unmet(scopes - {"pins:write"})] == ["pins.add"]
    assert {n.why for n in unmet(scopes - {"groups:read"})} == {
        "conversations.list in private channels",
        "users.conversations in private channels",
        "event member_joined_channel",
    }
    # channels:write.topic duplicates channels:manage for setTopic; chat:write.public and
    # reactions:write serve no method the code calls.
    spare = scopes | {"channels:write.topic", "chat:write.public", "reactions:write"}
    assert sorted(s for s in spare if not unmet(spare - {s})) == [
        "channels:write.topic",
        "chat:write.public",
        "reactions:write",
    ]
