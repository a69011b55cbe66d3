"""What the ticket adapters share: one request, its failures mapped onto the port's errors.

Connection refused or timed out before sending: :class:`Unavailable` (not applied). Sent and the
answer lost: :class:`Unavailable` with ``uncertain`` (it may have been applied; the core looks
for the ticket's marker before filing again). 429: :class:`Throttled` after ``Retry-After``.
5xx: :class:`Unavailable`. Every other status is the adapter's to read.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.ports.errors import Throttled, Unavailable

TIMEOUT_S = 10.0
DEFAULT_RETRY_AFTER_S = 10.0


async def send(
    client: httpx.AsyncClient,
    name: str,
    method: str,
    path: str,
    **kwargs: Any,
) -> httpx.Response:
    try:
        answer = await client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise Unavailable(f"{name}: cannot connect: {error}", uncertain=False) from None
    except httpx.TransportError as error:
        lost = f"{name}: {type(error).__name__}: {error}"
        raise Unavailable(lost, uncertain=method != "GET") from None
    if answer.status_code == 429:
        raise Throttled(
            f"{name}: HTTP 429: {one_line(answer.text)}", retry_after=retry_after(answer)
        )
    if answer.status_code >= 500:
        raise Unavailable(
            f"{name}: HTTP {answer.status_code}: {one_line(answer.text)}",
            uncertain=method != "GET",
        )
    return answer


def json_of(answer: httpx.Response) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def retry_after(answer: httpx.Response, default: float = DEFAULT_RETRY_AFTER_S) -> float:
    try:
        return max(float(answer.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default
