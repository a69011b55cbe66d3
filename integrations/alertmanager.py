"""Alertmanager's API v2 as the silencing port: ``POST /api/v2/silences``, ``DELETE
/api/v2/silence/{id}``, ``GET /api/v2/silences`` (to find a silence by its comment's marker).

Errors map onto the port's: a refused connection is :class:`Unavailable` (not applied); a
timeout after the request went out, or a 5xx, is :class:`Unavailable` with ``uncertain``
(the worker looks for the marker before creating again); any other 4xx is :class:`Refused`,
with Alertmanager's own message. Expiring a silence that already ended (Alertmanager answers
500 "already expired" in recent versions) or that it does not know (404, or 500 "silence not
found" in 0.25) returns False.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.config.settings import AlertmanagerSettings, Settings
from bot.incidents.silences import Matcher
from bot.ports.silencing import Refused, SilenceRef, Unavailable

TIMEOUT_S = 10.0


def _iso(at: datetime) -> str:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertmanagerSilencer:
    """The silencing port over the named Alertmanager targets of ``alertmanager:``."""

    def __init__(
        self,
        targets: Mapping[str, AlertmanagerSettings],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self.transport = transport

    async def _call(
        self, target: str, method: str, path: str, *, json: Any = None
    ) -> httpx.Response:
        config = self.targets.get(target)
        if config is None:
            raise Refused(f"no alertmanager target {target!r} is configured")
        headers = {"Accept": "application/json"}
        if (token := config.token()) is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with httpx.AsyncClient(
                base_url=config.url, timeout=self.timeout, transport=self.transport
            ) as client:
                answer = await client.request(method, path, json=json, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise Unavailable(f"{target}: cannot connect: {error}", uncertain=False) from None
        except httpx.TransportError as error:  # sent, answer lost: it may have been applied
            kind = type(error).__name__
            raise Unavailable(f"{target}: {kind}: {error}", uncertain=True) from None
        if answer.status_code >= 500 or answer.status_code == 429:
            raise Unavailable(
                f"{target}: HTTP {answer.status_code}: {_said(answer)}", uncertain=True
            )
        return answer

    async def create(
        self,
        target: str,
        matchers: Sequence[Matcher],
        *,
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> SilenceRef:
        body = {
            "matchers": [
                {"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
                for m in matchers
            ],
            "startsAt": _iso(starts),
            "endsAt": _iso(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._call(target, "POST", "/api/v2/silences", json=body)
        if answer.status_code != 200:
            raise Refused(f"{target}: HTTP {answer.status_code}: {_said(answer)}")
        try:
            return SilenceRef(str(answer.json()["silenceID"]), target)
        except (ValueError, KeyError, TypeError):
            raise Refused(f"{target}: no silenceID in the answer: {_said(answer)}") from None

    async def find(self, target: str, marker: str) -> SilenceRef | None:
        answer = await self._call(target, "GET", "/api/v2/silences")
        if answer.status_code != 200:
            raise Refused(f"{target}: HTTP {answer.status_code}: {_said(answer)}")
        for silence in answer.json():
            state = (silence.get("status") or {}).get("state")
            if marker in str(silence.get("comment", "")) and state != "expired":
                return SilenceRef(str(silence["id"]), target)
        return None

    async def expire(self, target: str, silence_id: str) -> bool:
        try:
            answer = await self._call(target, "DELETE", f"/api/v2/silence/{silence_id}")
        except Unavailable as error:
            # Alertmanager answers 500 for these (0.25: "silence not found").
            if any(gone in str(error) for gone in ("already expired", "not found")):
                return False
            raise
        if answer.status_code == 404:
            return False
        if answer.status_code != 200:
            raise Refused(f"{target}: HTTP {answer.status_code}: {_said(answer)}")
        return True


def _said(answer: httpx.Response) -> str:
    return " ".join(answer.text.split())[:300] or answer.reason_phrase


def alertmanager_silencer(settings: Settings) -> AlertmanagerSilencer | None:
    """The adapter for the configured targets; None when there are none."""
    return AlertmanagerSilencer(settings.alertmanager) if settings.alertmanager else None
