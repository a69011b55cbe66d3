"""GitHub Issues (REST, API version 2022-11-28) as the ticket port, over ``kind: github``.

- File: ``POST /repos/{owner}/{repo}/issues`` with title, body (Markdown; the follow-up's
  marker in an HTML comment at its end, which GitHub does not show) and labels.
- Find: ``GET /repos/{owner}/{repo}/issues?state=all&sort=created&direction=desc`` (the newest
  100), the one whose body carries the marker. The list is read from the repository itself,
  not from the search index, which lags behind a just-filed issue.
- Read: ``GET /repos/{owner}/{repo}/issues/{number}`` with ``If-None-Match`` (the ETag last
  seen): 304 is unchanged and costs no rate limit. A closed issue is done (or, with
  ``done_states``, one closed with one of those ``state_reason``\\s).

Every request sends ``Authorization: Bearer <token>``, ``Accept: application/vnd.github+json``
and ``X-GitHub-Api-Version``. Errors: 403 with ``x-ratelimit-remaining: 0`` (primary limit,
until ``x-ratelimit-reset``) or with ``Retry-After`` (secondary limit) and 429 are throttling;
other 4xx (400, 401, 403, 404, 410, 422) are refusals with GitHub's ``message``; 5xx and lost
connections are unavailability.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from bot.config.sections import TicketTarget
from bot.config.settings import Settings
from bot.ports.errors import Refused, Throttled, Unavailable
from bot.ports.tickets import TicketDraft, TicketRef
from integrations.http_errors import TIMEOUT_S, json_of, one_line, retry_after, send

API_VERSION = "2022-11-28"
TITLE_MAX = 256
BODY_MAX = 60000
FIND_PAGE = 100


def marker_comment(marker: str) -> str:
    return f"<!-- warroom:{marker} -->"


def said(answer: httpx.Response) -> str:
    """GitHub's ``{message, errors, documentation_url}`` in one line."""
    data = json_of(answer)
    parts = [str(data.get("message") or "")]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            parts.append(
                str(error.get("message") or f"{error.get('field', '')} {error.get('code', '')}")
            )
        else:
            parts.append(str(error))
    if data.get("documentation_url"):
        parts.append(f"see {data['documentation_url']}")
    return "; ".join(p.strip() for p in parts if p and p.strip())[:400] or one_line(answer.text)


class GitHubIssuesTracker:
    """The ticket port over named GitHub repositories."""

    vendor = "GitHub"

    def __init__(
        self,
        targets: Mapping[str, TicketTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.targets = {n: t for n, t in targets.items() if t.kind == "github"}
        self.timeout = timeout
        self.transport = transport
        self.now = now

    def _target(self, name: str) -> TicketTarget:
        target = self.targets.get(name)
        if target is None:
            raise Refused(f"no github ticket target {name!r} is configured")
        return target

    def _client(self, name: str, target: TicketTarget) -> httpx.AsyncClient:
        token = target.token()
        if not token:
            raise Refused(f"{name}: {target.token_env} is not set")
        return httpx.AsyncClient(
            base_url=target.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "warroom",
            },
            timeout=self.timeout,
            transport=self.transport,
        )

    def _check(self, name: str, answer: httpx.Response, *ok: int) -> None:
        code = answer.status_code
        if code in ok:
            return
        headers = answer.headers
        if code == 403 and headers.get("x-ratelimit-remaining") == "0":
            try:
                wait = float(headers.get("x-ratelimit-reset", "")) - self.now()
            except ValueError:
                wait = 60.0
            raise Throttled(f"{name}: GitHub rate limit: {said(answer)}", retry_after=max(wait, 1))
        if code == 403 and "retry-after" in headers:
            raise Throttled(
                f"{name}: GitHub secondary rate limit: {said(answer)}",
                retry_after=retry_after(answer),
            )
        raise Refused(f"{name}: GitHub answered HTTP {code}: {said(answer)}")

    def _ref(self, target: TicketTarget, issue: Mapping[str, Any], etag: str) -> TicketRef:
        state = str(issue.get("state") or "")
        reason = str(issue.get("state_reason") or "")
        done = state == "closed" and (not target.done_states or reason in target.done_states)
        number = str(issue.get("number") or "")
        return TicketRef(
            id=number,
            key=f"#{number}",
            url=str(issue.get("html_url") or "") or None,
            state=f"{state} ({reason})" if state == "closed" and reason else state,
            done=done,
            version=etag,
        )

    async def file(self, target: str, draft: TicketDraft) -> TicketRef:
        config = self._target(target)
        body = draft.body
        if draft.link:
            body += f"\n\n[The incident in warroom]({draft.link})"
        body = f"{body[:BODY_MAX]}\n\n{marker_comment(draft.marker)}"
        payload = {
            "title": " ".join(draft.title.split())[:TITLE_MAX] or draft.marker,
            "body": body,
            "labels": list(dict.fromkeys([*config.labels, *draft.labels])),
        }
        async with self._client(target, config) as client:
            answer = await send(
                client, target, "POST", f"/repos/{config.repo}/issues", json=payload
            )
        self._check(target, answer, 201)
        issue = json_of(answer)
        if not issue.get("number"):
            raise Unavailable(f"{target}: GitHub's answer names no issue number", uncertain=True)
        return self._ref(config, issue, answer.headers.get("etag", ""))

    async def find(self, target: str, marker: str) -> TicketRef | None:
        config = self._target(target)
        params = {
            "state": "all",
            "sort": "created",
            "direction": "desc",
            "per_page": str(FIND_PAGE),
        }
        async with self._client(target, config) as client:
            answer = await send(
                client, target, "GET", f"/repos/{config.repo}/issues", params=params
            )
        self._check(target, answer, 200)
        try:
            issues = answer.json()
        except ValueError:
            issues = []
        needle = marker_comment(marker)
        for issue in issues if isinstance(issues, list) else []:
            if (
                isinstance(issue, dict)
                and "pull_request" not in issue
                and needle in str(issue.get("body") or "")
            ):
                return self._ref(config, issue, "")
        return None

    async def read(self, target: str, ticket: TicketRef) -> TicketRef:
        config = self._target(target)
        headers = {"If-None-Match": ticket.version} if ticket.version else {}
        path = f"/repos/{config.repo}/issues/{ticket.id}"
        async with self._client(target, config) as client:
            answer = await send(client, target, "GET", path, headers=headers)
        if answer.status_code == 304:
            return ticket
        self._check(target, answer, 200)
        return self._ref(config, json_of(answer), answer.headers.get("etag", ""))


def github_tracker(settings: Settings) -> GitHubIssuesTracker | None:
    targets = {n: t for n, t in settings.tickets.targets.items() if t.kind == "github"}
    return GitHubIssuesTracker(targets) if targets else None
