"""Inbound Slack requests: hostile HTTP refused before Bolt sees it, repeats answered, not run.

``SlackEvents`` fronts Bolt on ``POST /slack/events``: a request whose signature headers are
missing or malformed, whose signature does not match, or that is not signed at all because no
signing secret is configured, is answered 401 (404 without a secret) and never reaches a
listener. ``skip_repeats`` is a Bolt middleware, for HTTP and Socket Mode alike: a request
already handled within the replay window (the same signature, event id, envelope, trigger or
click) is answered 200 with an empty body, which is Slack's empty ack, and not run again.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.errors import StorageUnavailable
from bot.store.replay import ReplayGuard

log = logging.getLogger(__name__)

#: Set on requests that came over Socket Mode: the envelope they came in (see ``socket``).
ENVELOPE_HEADER = "x-warroom-envelope-id"
#: Slack's rule: a request signed more than 5 minutes from now (either way) is refused.
MAX_AGE_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class SlackEvents:
    """``POST /slack/events``: checked here first, then handed to Bolt."""

    def __init__(self, bolt: AsyncApp, signing_secret: str | None) -> None:
        self.bolt = AsyncSlackRequestHandler(bolt)
        self.secret = signing_secret.encode() if signing_secret else None

    async def handle(self, request: Request) -> Response:
        if self.secret is None:
            # Socket Mode only: nothing could prove an HTTP request comes from Slack.
            return JSONResponse(
                {"error": "Slack HTTP requests are not accepted: set SLACK_SIGNING_SECRET"},
                status_code=404,
            )
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not _TIMESTAMP.fullmatch(timestamp):
            return _refused("missing or malformed X-Slack-Request-Timestamp")
        if not _SIGNATURE.fullmatch(signature):
            return _refused("missing or malformed X-Slack-Signature")
        if abs(time.time() - int(timestamp)) > MAX_AGE_S:
            return _refused("stale timestamp")
        body = await request.body()
        expected = hmac.new(self.secret, b"v0:%s:%s" % (timestamp.encode(), body), "sha256")
        if not hmac.compare_digest("v0=" + expected.hexdigest(), signature):
            return _refused("bad signature")
        # Signed, so from Slack, but unreadable: Bolt would fail on it with a 500.
        try:
            parsed = parse_body(body.decode("utf-8"), request.headers.get("content-type"))
        except ValueError:  # not UTF-8, not JSON
            parsed = None
        if not isinstance(parsed, dict) or not _shaped(parsed):
            return JSONResponse({"error": "unreadable body"}, status_code=400)
        return await self.bolt.handle(request)


_OBJECTS = ("event", "user", "team", "channel", "enterprise", "view", "container", "message")
_LISTS = ("actions", "authorizations")


def _shaped(body: dict[str, Any]) -> bool:
    """The fields Bolt reads without checking have the types Slack sends."""
    if any(key in body and not isinstance(body[key], dict) for key in _OBJECTS):
        return False
    return all(
        isinstance(body[key], list) and all(isinstance(item, dict) for item in body[key])
        for key in _LISTS
        if key in body
    )


def _refused(reason: str) -> Response:
    log.info("refused a Slack request: %s", reason)
    return JSONResponse({"error": "invalid request"}, status_code=401)


def request_keys(body: Mapping[str, Any], headers: Mapping[str, Sequence[str]]) -> list[str]:
    """What names a Slack request, so that a replay or a retry of it is recognised.

    The signature (HTTP: a replay of the same signed bytes), the envelope id (Socket Mode:
    Slack's redelivery of an unacknowledged envelope), the event id (Events API retries), the
    trigger id (a slash command, a click, a form submitted) and each click's ``action_ts``.
    """
    keys: list[str] = []
    for header, kind in (("x-slack-signature", "signature"), (ENVELOPE_HEADER, "envelope")):
        value = _first(headers.get(header))
        if value:
            keys.append(f"{kind}:{value}")
    if body.get("type") == "event_callback" and body.get("event_id"):
        keys.append(f"event:{body['event_id']}")
    if body.get("trigger_id"):
        keys.append(f"trigger:{body['trigger_id']}")
    if body.get("type") == "block_actions":
        user = (body.get("user") or {}).get("id", "")
        for action in body.get("actions") or []:
            if isinstance(action, dict) and action.get("action_ts"):
                keys.append(f"action:{user}:{action.get('action_id')}:{action['action_ts']}")
    return keys


def _first(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value[0] if value else None


Next = Callable[[], Awaitable[BoltResponse]]


def skip_repeats(guard: ReplayGuard) -> Callable[..., Awaitable[BoltResponse]]:
    """A Bolt middleware (after signature verification): a repeat gets an empty 200."""

    async def middleware(req: AsyncBoltRequest, next_: Next) -> BoltResponse:
        body = req.body if isinstance(req.body, dict) else {}
        keys = request_keys(body, req.headers)
        try:
            fresh = await guard.first(keys)
        except StorageUnavailable as error:
            # The request's own work will say the store is down; not knowing is no reason
            # to drop it.
            log.warning("cannot check whether a Slack request is a repeat (%s)", error)
            fresh = True
        if not fresh:
            kinds = ", ".join(dict.fromkeys(key.split(":", 1)[0] for key in keys))
            retry = _first(req.headers.get("x-slack-retry-num"))
            log.info(
                "ignored a repeated Slack request (keys: %s%s)",
                kinds,
                f"; Slack's retry {retry}" if retry else "",
            )
            return BoltResponse(status=200, body="")
        return await next_()

    return middleware
