"""What the HTTP adapters share: one request, its failures mapped onto the port's errors.

Used by the ticket adapters (Jira, GitHub issues), the status page (Statuspage) and the export
adapters (Confluence, GitHub contents). Connection refused or timed out before sending:
:class:`Unavailable` (not applied). Sent and the answer lost: :class:`Unavailable` with
``uncertain`` (it may have been applied; the core looks for the marker before trying again).
A rate limit (429, or what the adapter's ``throttled`` hook says is one): :class:`Throttled`
after ``Retry-After``. 5xx: :class:`Unavailable`. Every other status is the adapter's to read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from bot.ports.errors import Throttled, Unavailable

TIMEOUT_S = 10.0
DEFAULT_RETRY_AFTER_S = 10.0


def text_of(answer: httpx.Response) -> str:
    """The answer's text in one line: what an error message quotes by default."""
    return one_line(answer.text)


def throttled_429(answer: httpx.Response) -> float | None:
    """How long to wait when ``answer`` is a 429 (after ``Retry-After``); None otherwise."""
    return retry_after(answer) if answer.status_code == 429 else None


async def send(
    client: httpx.AsyncClient,
    name: str,
    method: str,
    path: str,
    *,
    said: Callable[[httpx.Response], str] = text_of,
    throttled: Callable[[httpx.Response], float | None] | None = throttled_429,
    uncertain: bool | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """``client.request(method, path, **kwargs)`` with its failures raised.

    ``said`` reads the vendor's error message out of an answer; ``throttled`` says how long to
    wait when an answer is a rate limit (None: not one; ``throttled=None``: the adapter reads
    rate limits itself); ``uncertain`` whether a lost answer or a 5xx may have been applied
    (None: for every method but GET).
    """
    maybe_applied = method != "GET" if uncertain is None else uncertain
    try:
        answer = await client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise Unavailable(f"{name}: cannot connect: {error}", uncertain=False) from None
    except httpx.TransportError as error:
        lost = f"{name}: {type(error).__name__}: {error}"
        raise Unavailable(lost, uncertain=maybe_applied) from None
    code = answer.status_code
    wait = throttled(answer) if throttled is not None else None
    if wait is not None:
        raise Throttled(f"{name}: HTTP {code}: {said(answer)}", retry_after=wait)
    if code >= 500:
        raise Unavailable(f"{name}: HTTP {code}: {said(answer)}", uncertain=maybe_applied)
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
