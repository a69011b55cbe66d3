"""How a fake Web API method is written: its arguments, its context, its errors, its registry.

A handler is a plain function `(CallContext, Args) -> dict` registered with `@slack_method`,
naming every error code it may answer. It returns the success body (without ``ok``) or raises
`SlackError`. The registry's error lists are checked against Slack's spec by a test, and the
pipeline refuses (as a bug in the fake) any code a handler raises without declaring it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.slack_state import Channel, Workspace


class SlackError(Exception):
    """An ``{"ok": false, "error": code}`` answer, with any extra fields Slack adds."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


class ClientMisuse(Exception):
    """A call Slack would accept but that is surely a client bug (strict mode only)."""


@dataclass
class CallContext:
    workspace: Workspace
    caller: str
    now: float
    base_url: str
    strict: bool

    def channel(self, ref: str) -> Channel:
        """The channel an argument names, as the caller can see it, or channel_not_found.

        Accepts an ID, ``#name`` or a bare name (chat.postMessage still takes names). A private
        channel the caller is not in is invisible, as in Slack.
        """
        ws = self.workspace
        found = ws.channels.get(ref)
        if found is None and ref:
            found = ws.channel_named(ref.removeprefix("#"))
        if found is None or (found.is_private and self.caller not in found.members):
            raise SlackError("channel_not_found")
        return found

    def channel_by_id(self, ref: str) -> Channel:
        """Like `channel`, but IDs only (the conversations.* methods take no names)."""
        found = self.workspace.channels.get(ref)
        if found is None or (found.is_private and self.caller not in found.members):
            raise SlackError("channel_not_found")
        return found


class Args:
    """A call's arguments, form-encoded (all strings) or JSON (native types)."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = dict(raw)

    def present(self, name: str) -> bool:
        return self.raw.get(name) not in (None, "")

    def string(self, name: str, default: str = "") -> str:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list | dict):
            return json.dumps(value)
        return str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes")

    def integer(self, name: str) -> int | None:
        """The argument as an integer; None when absent; ValueError when not a number."""
        value = self.raw.get(name)
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            raise ValueError(name)
        return int(str(value))

    def decoded(self, name: str) -> Any:
        """A JSON-valued argument (blocks, view, files...): a string to decode or a native value.

        Returns None when absent; raises ValueError when the string is not JSON.
        """
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return json.loads(value)
        return value


HandlerFn = Callable[[CallContext, Args], dict[str, Any]]


@dataclass(frozen=True)
class MethodHandler:
    name: str
    fn: HandlerFn
    errors: frozenset[str]


HANDLERS: dict[str, MethodHandler] = {}


def slack_method(name: str, *, errors: Iterable[str]) -> Callable[[HandlerFn], HandlerFn]:
    """Register a handler for a Web API method, with every error code it may raise."""

    def register(fn: HandlerFn) -> HandlerFn:
        if name in HANDLERS:
            raise ValueError(f"{name} is registered twice")
        HANDLERS[name] = MethodHandler(name, fn, frozenset(errors))
        return fn

    return register


def is_ts(value: str) -> bool:
    """Whether a string looks like a message timestamp (``1234567890.123456``)."""
    seconds, dot, micros = value.partition(".")
    return bool(dot) and seconds.isdigit() and micros.isdigit() and len(micros) == 6
