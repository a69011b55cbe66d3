"""Opsgenie's Alert API v2 as the paging port.

- ``trigger``: ``POST {url}/v2/alerts`` with ``alias`` = the incident's key, so Opsgenie keeps
  one open alert per incident (a create for an open alias only raises its count);
- ``acknowledge``: ``POST {url}/v2/alerts/{alias}/acknowledge?identifierType=alias``;
- ``resolve``: ``POST {url}/v2/alerts/{alias}/close?identifierType=alias``.

Each call carries ``Authorization: GenieKey <key>`` (the key from the target's variable).
Opsgenie processes requests asynchronously: 202 ``{result, took, requestId}`` means accepted,
and is taken as done. 400, 401, 402, 403, 404 and 422 (the request or the key is wrong) are
:class:`PageRefused` with Opsgenie's ``message``, never retried; 429 is :class:`PageThrottled`
(after ``Retry-After`` when sent); 5xx and lost connections are :class:`PageUnavailable`,
retried by the worker. Any other 4xx is refused.

Priority: a target's ``priorities`` map (severity → ``P1``..``P5``) first; otherwise by rank,
the scheme's most severe level ``P1``, the next ``P2``, … capped at ``P5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bot.config.sections import OpsgenieTarget
from bot.config.settings import Settings
from bot.errors import InvalidSeverity
from bot.incidents.severity import SeverityScheme
from bot.ports.paging import (
    PageAlert,
    PageReceipt,
    PageRefused,
    PageThrottled,
    PageUnavailable,
)

TIMEOUT_S = 10.0
DEFAULT_RETRY_AFTER_S = 10.0
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
SENDER = "warroom"

#: Opsgenie's documented field limits (characters); longer values are cut to fit.
MESSAGE_MAX = 130
DESCRIPTION_MAX = 15000
ENTITY_MAX = 512
TAG_MAX = 50
DETAIL_VALUE_MAX = 1000


def priority_of(rank: int) -> str:
    return PRIORITIES[min(max(rank, 0), len(PRIORITIES) - 1)]


class OpsgeniePager:
    """The paging port over the named targets of ``paging.opsgenie``."""

    def __init__(
        self,
        targets: Mapping[str, OpsgenieTarget],
        *,
        scheme: SeverityScheme | None = None,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.scheme = scheme
        self.timeout = timeout
        self.transport = transport

    def priority(self, target: OpsgenieTarget, alert: PageAlert) -> str:
        """The target's priority for this severity, else the one its rank gives."""
        for name, priority in target.priorities.items():
            if self._level(name) == alert.severity.upper():
                return priority
        return priority_of(alert.rank)

    def _level(self, name: str) -> str:
        if self.scheme is not None:
            try:
                return self.scheme.get(name).name.upper()
            except InvalidSeverity:
                pass
        return name.upper()

    async def trigger(self, target: str, dedup_key: str, alert: PageAlert) -> PageReceipt:
        config = self._target(target)
        tags = [SENDER, f"severity:{alert.severity}"]
        if alert.component:
            tags.append(f"service:{alert.component}")
        body: dict[str, Any] = {
            "message": alert.summary[:MESSAGE_MAX],
            "alias": dedup_key,
            "description": _description(alert)[:DESCRIPTION_MAX],
            "priority": self.priority(config, alert),
            "tags": [t[:TAG_MAX] for t in tags],
            "details": {k: v[:DETAIL_VALUE_MAX] for k, v in alert.details.items()},
            "source": SENDER,
            "user": SENDER,
        }
        if alert.component:
            body["entity"] = alert.component[:ENTITY_MAX]
        if config.team:
            body["responders"] = [{"type": "team", "name": config.team}]
        return await self._send(target, config, "/v2/alerts", dedup_key, body)

    async def acknowledge(self, target: str, dedup_key: str) -> PageReceipt:
        note = f"Acknowledged in warroom ({dedup_key})"
        return await self._action(target, "acknowledge", dedup_key, note)

    async def resolve(self, target: str, dedup_key: str) -> PageReceipt:
        note = f"Resolved in warroom ({dedup_key})"
        return await self._action(target, "close", dedup_key, note)

    async def _action(self, target: str, action: str, alias: str, note: str) -> PageReceipt:
        config = self._target(target)
        path = f"/v2/alerts/{quote(alias, safe='')}/{action}"
        body = {"user": SENDER, "source": SENDER, "note": note}
        return await self._send(target, config, path, alias, body, {"identifierType": "alias"})

    def _target(self, target: str) -> OpsgenieTarget:
        config = self.targets.get(target)
        if config is None:
            raise PageRefused(f"no opsgenie target {target!r} is configured")
        return config

    async def _send(
        self,
        target: str,
        config: OpsgenieTarget,
        path: str,
        alias: str,
        body: dict[str, Any],
        params: dict[str, str] | None = None,
    ) -> PageReceipt:
        key = config.api_key()
        if key is None:
            raise PageRefused(f"{target}: {config.api_key_env} is not set")
        try:
            async with httpx.AsyncClient(
                base_url=config.url, timeout=self.timeout, transport=self.transport
            ) as client:
                answer = await client.post(
                    path, json=body, params=params, headers={"Authorization": f"GenieKey {key}"}
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise PageUnavailable(f"{target}: cannot connect: {error}", uncertain=False) from None
        except httpx.TransportError as error:  # sent, answer lost: it may have been applied
            kind = type(error).__name__
            raise PageUnavailable(f"{target}: {kind}: {error}", uncertain=True) from None
        code = answer.status_code
        if code == 429:
            raise PageThrottled(
                f"{target}: HTTP 429: {_said(answer)}", retry_after=_retry_after(answer)
            )
        if code >= 500:
            raise PageUnavailable(f"{target}: HTTP {code}: {_said(answer)}", uncertain=True)
        if not 200 <= code < 300:
            raise PageRefused(f"{target}: HTTP {code}: {_said(answer)}")
        data = _json(answer)
        result = str(data.get("result") or "accepted")
        request = data.get("requestId")
        return PageReceipt(
            dedup_key=alias, message=f"{result} (request {request})" if request else result
        )


def _description(alert: PageAlert) -> str:
    lines = [alert.summary, ""]
    lines += [f"{name}: {value}" for name, value in alert.details.items()]
    if alert.link and "link" not in alert.details:
        lines.append(f"link: {alert.link}")
    return "\n".join(lines)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _said(answer: httpx.Response) -> str:
    """Opsgenie's error shape ``{message, errors?, took, requestId}``, else the text, one line."""
    data = _json(answer)
    message = data.get("message")
    if message:
        parts = [str(message)]
        errors = data.get("errors")
        if isinstance(errors, dict) and errors:
            parts.append("; ".join(f"{k}: {v}" for k, v in errors.items()))
        return ": ".join(parts)[:300]
    return " ".join(answer.text.split())[:300] or answer.reason_phrase


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(float(answer.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def opsgenie_pager(settings: Settings) -> OpsgeniePager | None:
    """The adapter for the configured targets; None when there are none."""
    targets = settings.paging.opsgenie
    return OpsgeniePager(targets, scheme=settings.severity_scheme()) if targets else None
