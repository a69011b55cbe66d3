"""Atlassian Statuspage's REST API v1 as the status page port.

``POST /v1/pages/{page_id}/incidents`` opens a status incident, ``PATCH
/v1/pages/{page_id}/incidents/{incident_id}`` posts an update (a new ``status`` and ``body``
make an incident update; ``resolved`` resolves it), and ``GET
/v1/pages/{page_id}/incidents/unresolved`` finds the one a first attempt may have opened: each
carries ``metadata: {"warroom": {"incident": <key>}}`` (Statuspage wants every top-level value
of ``metadata`` to be an object). Components change status with the incident (``components:
{id: status}``, ``component_ids``). Authentication: ``Authorization: OAuth <key>``.

Answers map onto the port's errors (:mod:`bot.ports.errors`) as Statuspage documents them:
401, 403, 404, 422 and any other 4xx are :class:`Refused`, with Statuspage's own message; 420
and 429 (Statuspage uses both for its rate limit of one request a second) are
:class:`Throttled`; 5xx, timeouts and lost connections are :class:`Unavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bot.config.settings import Settings, StatusPageTarget
from bot.ports.errors import Refused, Throttled
from bot.ports.statuspage import StatusNotice, StatusRef
from integrations.http_errors import TIMEOUT_S, json_of, one_line, retry_after, send

#: Statuspage allows one request a second per key; without a Retry-After, wait this long.
DEFAULT_RETRY_AFTER_S = 2.0
METADATA_KEY = "warroom"
NAME_MAX = 255
BODY_MAX = 25000


class StatuspageAdapter:
    """The status page port over the named targets of ``statuspage:``."""

    def __init__(
        self,
        targets: Mapping[str, StatusPageTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self.transport = transport

    async def open(self, target: str, notice: StatusNotice) -> StatusRef:
        incident: dict[str, Any] = {
            "name": notice.name[:NAME_MAX],
            "metadata": {METADATA_KEY: {"incident": notice.marker}},
            "deliver_notifications": True,
            **_change(notice),
        }
        answer = await self._call(target, "POST", "/incidents", json={"incident": incident})
        return _ref(target, answer)

    async def update(self, target: str, incident_id: str, notice: StatusNotice) -> StatusRef:
        body = {"incident": {"deliver_notifications": True, **_change(notice)}}
        answer = await self._call(target, "PATCH", f"/incidents/{incident_id}", json=body)
        return _ref(target, answer)

    async def find(self, target: str, marker: str) -> StatusRef | None:
        answer = await self._call(target, "GET", "/incidents/unresolved", params={"per_page": 100})
        found = answer.json()
        for incident in found if isinstance(found, list) else []:
            meta = incident.get("metadata") if isinstance(incident, dict) else None
            mine = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
            if isinstance(mine, dict) and mine.get("incident") == marker:
                return _as_ref(incident)
        return None

    async def _call(
        self,
        target: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        config = self.targets.get(target)
        if config is None:
            raise Refused(f"no statuspage target {target!r} is configured")
        key = config.api_key()
        if key is None:
            raise Refused(f"statuspage {target}: {config.api_key_env} is not set")
        headers = {"Authorization": f"OAuth {key}", "Accept": "application/json"}
        url = f"/v1/pages/{config.page_id}{path}"
        name = f"statuspage {target}"
        async with httpx.AsyncClient(
            base_url=config.url, timeout=self.timeout, transport=self.transport
        ) as client:
            # Every call counts as possibly applied when its answer is lost or a 5xx; 420 and
            # 429 are read here, below, as Statuspage's rate limit.
            answer = await send(
                client,
                name,
                method,
                url,
                said=_said,
                throttled=None,
                uncertain=True,
                json=json,
                params=params,
                headers=headers,
            )
        code = answer.status_code
        if code in (420, 429):
            raise Throttled(
                f"{name}: HTTP {code} (rate limited): {_said(answer)}",
                retry_after=retry_after(answer, DEFAULT_RETRY_AFTER_S),
            )
        if not 200 <= code < 300:
            raise Refused(f"{name}: HTTP {code}: {_said(answer)}")
        return answer


def _change(notice: StatusNotice) -> dict[str, Any]:
    """What every call says: the phase, this message, the impact and the components."""
    change: dict[str, Any] = {
        "status": notice.phase,
        "body": notice.body[:BODY_MAX],
        "impact_override": notice.impact,
    }
    if notice.components:
        change["components"] = dict(notice.components)
        change["component_ids"] = list(notice.components)
    return change


def _ref(target: str, answer: httpx.Response) -> StatusRef:
    data = json_of(answer)
    if not data.get("id"):
        raise Refused(f"statuspage {target}: no incident id in the answer: {_said(answer)}")
    return _as_ref(data)


def _as_ref(incident: Mapping[str, Any]) -> StatusRef:
    link = incident.get("shortlink")
    updates = [u for u in incident.get("incident_updates") or [] if isinstance(u, dict)]
    latest = max(updates, key=lambda u: str(u.get("created_at") or ""), default=None)
    return StatusRef(
        id=str(incident["id"]),
        url=str(link) if link else None,
        phase=str(incident.get("status") or ""),
        last_body=str(latest["body"]) if latest and latest.get("body") is not None else None,
    )


def _said(answer: httpx.Response) -> str:
    """Statuspage's ``{"error": …}`` (a text or a list) or ``{"message": …}``, else the text."""
    data = json_of(answer)
    said = data.get("error") or data.get("message")
    if isinstance(said, list):
        said = "; ".join(str(s) for s in said)
    if said:
        return one_line(str(said))
    return one_line(answer.text) or answer.reason_phrase


def statuspage_adapter(settings: Settings) -> StatuspageAdapter | None:
    """The adapter for the configured targets; None when there are none."""
    return StatuspageAdapter(settings.statuspage) if settings.statuspage else None
