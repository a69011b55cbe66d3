"""``POST /webhooks/<name>``: alert senders' native bodies in, 2xx only after commit.

Order of checks: unknown endpoint 404; body over the cap 413; credentials 401
(saying what to send, never the secret); content type 415; a body that is not
JSON within the decoding limits (``bot.intake.alerts.decode``: depth, 64-bit
integers, finite numbers, no NUL or lone surrogate), or lacks a field, 400
naming the field's path. Nothing is stored on any 4xx. Storage down (or slower than
``intake.timeout``) answers 503 with ``Retry-After`` so the sender retries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from bot.clock import Clock, SystemClock
from bot.config.settings import Settings, WebhookSettings
from bot.errors import StorageUnavailable
from bot.intake.alerts.decode import decode_body
from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.model import Delivery
from bot.intake.alerts.pagerduty import verify_signature as verify_pagerduty
from bot.intake.alerts.registry import get_parser
from bot.intake.alerts.signatures import GRAFANA_SIGNATURE_HEADER, grafana_refusal
from bot.intake.fold import Endpoint, IntakeResult, delivery_key
from bot.store.cache import SharedCache
from handlers.metrics import Metrics

log = logging.getLogger(__name__)


class Receiver(Protocol):
    """Where a parsed delivery goes: :class:`bot.intake.batch.Batcher` (the server's, folding
    concurrent deliveries in one transaction) or :class:`bot.intake.fold.Intake` itself."""

    async def receive(
        self, endpoint: Endpoint, delivery: Delivery, *, delivery_key: str
    ) -> IntakeResult: ...


RETRY_AFTER_S = 5
DEDUP_TTL_S = 48 * 3600  # PagerDuty retries for 48 hours
PAGERDUTY_SIGNATURE_HEADER = "X-PagerDuty-Signature"
PREFIX = "/webhooks/"


@dataclass(frozen=True, slots=True)
class Answer:
    """A webhook's HTTP answer: always a JSON body."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


_DUPLICATE = Answer(200, b'{"status":"duplicate","alerts":0,"incidents":[]}')
_SERVER_ERROR = Answer(500, b'{"error":"internal error"}')


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    """The client disconnected before its body arrived."""


@dataclass(frozen=True)
class WebhookEndpoint:
    endpoint: Endpoint
    config: WebhookSettings


class Webhooks:
    """The configured endpoints and what they need to run."""

    def __init__(
        self,
        settings: Settings,
        intake: Receiver,
        cache: SharedCache,
        *,
        after_commit: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        folds_counted: bool = False,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.clock = clock or SystemClock()
        self.intake = intake
        self.receiver_keeps_deadline = bool(getattr(intake, "keeps_deadline", False))
        self.after_commit = after_commit
        #: The receiver reports each fold to the metrics itself (the journal's folder).
        self.folds_counted = folds_counted
        self.cache = cache
        self.max_body = settings.intake.max_body_bytes
        self.timeout = settings.intake.timeout.total_seconds()
        self.endpoints = {
            name: WebhookEndpoint(
                Endpoint(
                    name=name,
                    source=config.source,
                    service=config.service,
                    labels=dict(config.labels),
                    group_by=tuple(config.group_by or settings.intake.group_by),
                ),
                config,
            )
            for name, config in settings.webhooks.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application of ``POST /webhooks/<name>`` (see :class:`handlers.app.App`).

        Plain ASGI, not a Starlette endpoint: in a storm this is the server's hot path, and
        a request object, a response object and the routing layers would cost as much as
        the parse. Whatever goes wrong inside is answered 500 with a reference, and logged.
        """
        name = scope["path"].removeprefix(PREFIX)
        hook = self.endpoints.get(name)
        started, answer = time.perf_counter(), _SERVER_ERROR
        try:
            answer = await self.handle(hook, _headers(scope), receive)
        except Exception:
            reference = uuid.uuid4().hex[:8]
            log.exception("webhook %s failed (reference %s)", name, reference)
            answer = _error(500, "internal error", reference=reference)
        finally:
            source = hook.endpoint.source if hook else "unknown"
            self.metrics.webhook(source, answer.status, time.perf_counter() - started)
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(answer.body)),
                    *answer.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def handle(
        self, hook: WebhookEndpoint | None, headers: Mapping[str, str], receive: Receive
    ) -> Answer:
        """The answer to one delivery at endpoint ``hook`` (None: no such endpoint);
        ``headers`` named in lower case."""
        if hook is None:
            return _error(404, "no such webhook endpoint")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return _error(413, f"body over {self.max_body} bytes")
        try:
            raw = await self._read(receive)
        except _TooLarge:
            return _error(413, f"body over {self.max_body} bytes")
        except _Gone:
            return _error(400, "the client went away before the body arrived")
        refusal = _refusal(hook.config, headers, raw, self.clock)
        if refusal is not None:
            return _error(401, refusal, headers=_challenge(hook.config))
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return _error(415, f"send Content-Type: application/json, not {media or 'nothing'}")
        header_id = headers.get("x-webhook-id")
        key = delivery_key(raw, header_id)
        dedup = _dedup(hook, key)
        alerts = self.cache.noted(dedup)
        if alerts is not None:  # a repeat of bytes this process accepted: not decoded again
            return self._duplicate(hook, alerts)
        try:
            delivery = get_parser(hook.endpoint.source)(decode_body(raw)).arrived_as(raw)
        except PayloadError as error:
            return _error(400, str(error), field=error.field)
        if not header_id and delivery.delivery_id:  # the body names its delivery
            key = delivery_key(raw, delivery.delivery_id)
            dedup = _dedup(hook, key)
        if await self.cache.seen(dedup):
            return self._duplicate(hook, len(delivery.alerts))
        try:
            result = await self._receive(hook, delivery, key)
        except (StorageUnavailable, TimeoutError) as error:
            log.warning(
                "webhook %s refused with 503: %s",
                hook.endpoint.name,
                error or "timed out",
                extra={"endpoint": hook.endpoint.name},
            )
            self.metrics.received(hook.endpoint.source, "refused", len(delivery.alerts))
            return _error(
                503,
                "storage unavailable, retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if not self.folds_counted:
            self.metrics.intake(hook.endpoint.source, len(delivery.alerts), result)
        if not result.queued:  # a queued delivery wakes the worker when it is folded
            self.after_commit()  # e.g. wake the delivery worker: the channel should open now
        # The alert count noted with the mark: the same bytes again skip the decoding.
        await self.cache.mark(dedup, DEDUP_TTL_S, note=len(delivery.alerts))
        status = (
            "queued"
            if result.queued
            else ("duplicate" if result.duplicate else ("pong" if result.ping else "accepted"))
        )
        incidents = result.incidents
        if log.isEnabledFor(logging.INFO):
            log.info(
                "webhook %s: %s, %d alert(s), incidents %s",
                hook.endpoint.name,
                status,
                result.alerts,
                ",".join(incidents) or "-",
                extra={"endpoint": hook.endpoint.name, "incidents": incidents},
            )
        # Stored, not folded yet (a storm): 202 Accepted, the incidents follow.
        return _answer(
            202 if result.queued else 200,
            status,
            result.alerts,
            result.ignored,
            tuple(incidents),
            tuple(result.opened),
        )

    async def _receive(self, hook: WebhookEndpoint, delivery: Delivery, key: str) -> IntakeResult:
        """The receiver's result; past the deadline a ``TimeoutError``.

        A receiver that keeps the deadline itself (the batcher fails a request it could not
        commit in time, and its task's end fails every request still waiting) is awaited as
        it is; any other gets ``intake.timeout`` (no task per request, unlike ``wait_for``).
        """
        if self.receiver_keeps_deadline:
            return await self.intake.receive(hook.endpoint, delivery, delivery_key=key)
        async with asyncio.timeout(self.timeout):
            return await self.intake.receive(hook.endpoint, delivery, delivery_key=key)

    def _duplicate(self, hook: WebhookEndpoint, alerts: int) -> Answer:
        self.metrics.received(hook.endpoint.source, "duplicate", alerts)
        return _DUPLICATE

    async def _read(self, receive: Receive) -> bytes:
        """The request's body, refused past ``max_body`` bytes without reading the rest."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                raise _Gone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI sends them so); the first of a
    repeated header wins, as with Starlette's ``Headers.get``."""
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(scope["headers"])
    }


@functools.lru_cache(maxsize=1024)
def _answer(
    code: int,
    status: str,
    alerts: int,
    ignored: int,
    incidents: tuple[str, ...],
    opened: tuple[str, ...],
) -> Answer:
    """A delivery's answer, rendered once per shape (a storm's answers are a handful)."""
    body = {
        "status": status,
        "alerts": alerts,
        "ignored": ignored,
        "incidents": list(incidents),
        "opened": list(opened),
    }
    return Answer(code, _json(body))


def _dedup(hook: WebhookEndpoint, key: str) -> str:
    """The dedup mark's name for a delivery key at this endpoint."""
    return f"delivery:{hook.endpoint.name}:{key}"


def _refusal(
    config: WebhookSettings, headers: Mapping[str, str], raw: bytes, clock: Clock
) -> str | None:
    """Why the request is refused, or ``None``: every configured check passed.

    An endpoint with no check is open (see the README).  The reasons say what to send,
    never what was expected.
    """
    if not (config.token_env or config.basic_password_env or config.signing_secret_env):
        return None
    header = headers.get("authorization", "")
    token = config.secret("token")
    if token is not None:
        problem = _bearer_problem(header, token)
        if problem is not None:
            return problem
    password = config.secret("basic")
    if password is not None:
        if header.partition(" ")[0].lower() != "basic":
            return "send Authorization: Basic <base64 of user:password>"
        if not _basic_ok(header, config.basic_user or "", password):
            return "wrong user or password"
    secret = config.secret("signing")
    if secret is not None:
        secrets = [s.strip() for s in secret.split(",") if s.strip()]
        if config.source == "pagerduty":
            name = config.signature_header or PAGERDUTY_SIGNATURE_HEADER
            signature = headers.get(name.lower(), "")
            if not signature.strip():
                return f"missing {name} header"
            if not verify_pagerduty(raw, signature, secrets):
                return f"{name} does not match the body"
            return None
        name = config.signature_header or GRAFANA_SIGNATURE_HEADER
        stamp = headers.get(config.timestamp_header.lower()) if config.timestamp_header else None
        if config.timestamp_header and stamp is None:
            return f"missing {config.timestamp_header} header"
        problem = grafana_refusal(
            raw,
            secrets,
            headers.get(name.lower(), ""),
            stamp,
            now=clock.now(),
            tolerance=config.replay_window,
        )
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _bearer_problem(header: str, token: str) -> str | None:
    """RFC 6750: ``Authorization: Bearer <token>``; the scheme word in any case (RFC 7235)."""
    scheme, _, credentials = header.strip().partition(" ")
    if not scheme:
        return "missing credentials: send Authorization: Bearer <token>"
    if scheme.lower() != "bearer":
        return "send the token as Authorization: Bearer <token> (the word Bearer is required)"
    if not _same(credentials.strip(), token):
        return "wrong bearer token"
    return None


def _challenge(config: WebhookSettings) -> dict[str, str]:
    """The ``WWW-Authenticate`` header a 401 carries (RFC 7235), when the scheme is standard."""
    if config.token_env:
        return {"WWW-Authenticate": 'Bearer realm="warroom"'}
    if config.basic_password_env:
        return {"WWW-Authenticate": 'Basic realm="warroom", charset="UTF-8"'}
    return {}


def _basic_ok(header: str, user: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, _, given_password = given.partition(":")
    return _same(given_user, user) & _same(given_password, password)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _encoded(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


def _error(
    status: int,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    reference: str | None = None,
) -> Answer:
    # A message may quote the body; a lone surrogate in it must not break the answer.
    body: dict[str, str] = {"error": message.encode("utf-8", "backslashreplace").decode()}
    if field is not None:
        body["field"] = field.encode("utf-8", "backslashreplace").decode()
    if status >= 500:
        body["reference"] = reference or uuid.uuid4().hex[:8]
    return Answer(status, _json(body), _encoded(headers or {}))


def _json(body: Mapping[str, object]) -> bytes:
    """An answer's body: compact JSON, as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
