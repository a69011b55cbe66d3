"""PagerDuty's Events API v2 as the paging port: ``POST {url}/v2/enqueue``.

One event per call: ``trigger`` (with the alert's ``payload``), ``acknowledge`` or ``resolve``,
always with ``dedup_key`` = the incident's key, so PagerDuty keeps one alert per incident.
Answers map onto the port's errors as PagerDuty's own description of the API says: 202 is
done; 400 (the event is invalid) is :class:`PageRefused`, never retried; 429 is
:class:`PageThrottled` (after ``Retry-After`` when sent); 5xx and lost connections are
:class:`PageUnavailable`, retried with backoff by the worker. Any other 4xx is refused.

Severity: PagerDuty has four (``critical``, ``error``, ``warning``, ``info``); the scheme's most
severe level is ``critical``, the next ``error``, the next ``warning``, the rest ``info`` (the
reverse of how intake reads a sender's severity word).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

import httpx

from bot.config.sections import PagerDutyTarget
from bot.config.settings import Settings
from bot.ports.paging import (
    PageAlert,
    PageReceipt,
    PageRefused,
    PageThrottled,
    PageUnavailable,
)

TIMEOUT_S = 10.0
DEFAULT_RETRY_AFTER_S = 5.0
SEVERITIES = ("critical", "error", "warning", "info")
CLIENT = "warroom"


def severity_of(rank: int) -> str:
    return SEVERITIES[min(max(rank, 0), len(SEVERITIES) - 1)]


class PagerDutyPager:
    """The paging port over the named targets of ``paging.pagerduty``."""

    def __init__(
        self,
        targets: Mapping[str, PagerDutyTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self.transport = transport

    async def trigger(self, target: str, dedup_key: str, alert: PageAlert) -> PageReceipt:
        at = alert.at if alert.at.tzinfo else alert.at.replace(tzinfo=UTC)
        payload: dict[str, Any] = {
            "summary": alert.summary[:1024],
            "source": alert.source,
            "severity": severity_of(alert.rank),
            "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "custom_details": dict(alert.details),
        }
        if alert.component:
            payload["component"] = alert.component
        event: dict[str, Any] = {"payload": payload, "client": CLIENT}
        if alert.link:
            event["client_url"] = alert.link
            event["links"] = [{"href": alert.link, "text": f"{dedup_key} in warroom"}]
        return await self._send(target, "trigger", dedup_key, event)

    async def acknowledge(self, target: str, dedup_key: str) -> PageReceipt:
        return await self._send(target, "acknowledge", dedup_key, {})

    async def resolve(self, target: str, dedup_key: str) -> PageReceipt:
        return await self._send(target, "resolve", dedup_key, {})

    async def _send(
        self, target: str, action: str, dedup_key: str, extra: dict[str, Any]
    ) -> PageReceipt:
        config = self.targets.get(target)
        if config is None:
            raise PageRefused(f"no pagerduty target {target!r} is configured")
        key = config.routing_key()
        if key is None:
            raise PageRefused(f"{target}: {config.routing_key_env} is not set")
        body = {"routing_key": key, "event_action": action, "dedup_key": dedup_key, **extra}
        try:
            async with httpx.AsyncClient(
                base_url=config.url, timeout=self.timeout, transport=self.transport
            ) as client:
                answer = await client.post("/v2/enqueue", json=body)
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
        return PageReceipt(
            dedup_key=str(data.get("dedup_key") or dedup_key), message=str(data.get("message", ""))
        )


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _said(answer: httpx.Response) -> str:
    """PagerDuty's error shape ``{status, message, errors}``, else the text, in one line."""
    data = _json(answer)
    if data.get("message") or data.get("status"):
        parts = [str(data.get("status", "")), str(data.get("message", ""))]
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            parts.append("; ".join(str(e) for e in errors))
        return ": ".join(p for p in parts if p)[:300]
    return " ".join(answer.text.split())[:300] or answer.reason_phrase


def _retry_after(answer: httpx.Response) -> float:
    try:
        return max(float(answer.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def pagerduty_pager(settings: Settings) -> PagerDutyPager | None:
    """The adapter for the configured targets; None when there are none."""
    targets = settings.paging.pagerduty
    return PagerDutyPager(targets) if targets else None
