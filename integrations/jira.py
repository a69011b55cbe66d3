"""Jira Cloud platform REST API v3 as the ticket port, over the ``kind: jira`` targets.

- File: ``POST /rest/api/3/issue`` with ``fields`` project (key), summary, issuetype (name),
  description in Atlassian Document Format, labels (the target's and the follow-up's marker)
  and, when the target maps the incident's severity, priority (name).
- Find: ``GET /rest/api/3/search/jql`` with ``project = "OPS" AND labels = "<marker>"``, so a
  retry whose first attempt went through finds that issue instead of filing a second.
- Read: ``GET /rest/api/3/issue/{key}?fields=status,updated``; done when
  ``fields.status.statusCategory.key`` is ``done`` (or the status is one of ``done_states``);
  the version is ``fields.updated``.

Authentication is basic: the account's email and an API token, both from the environment.
Errors, as the description lists them: 400, 401, 403, 404, 410 and 422 are refusals (with
Jira's ``errorMessages`` and ``errors``), 429 is throttling (``Retry-After``), 5xx and lost
connections are unavailability.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from bot.config.sections import TicketTarget
from bot.config.settings import Settings
from bot.ports.errors import Refused, Unavailable
from bot.ports.tickets import TicketDraft, TicketRef
from integrations.http_errors import TIMEOUT_S, json_of, one_line, send

SUMMARY_MAX = 255


def adf(text: str, link: str | None = None) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format ``doc``: a paragraph per block of lines, a
    ``hardBreak`` between lines; ``link`` as a last paragraph with a link mark."""
    content: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n")]
        nodes: list[dict[str, Any]] = []
        for index, line in enumerate(lines):
            if index:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        if any(n["type"] == "text" for n in nodes):
            content.append({"type": "paragraph", "content": nodes})
    if link:
        mark = {"type": "link", "attrs": {"href": link}}
        content.append(
            {"type": "paragraph", "content": [{"type": "text", "text": link, "marks": [mark]}]}
        )
    return {"type": "doc", "version": 1, "content": content}


def said(answer: httpx.Response) -> str:
    """Jira's ``{errorMessages: [...], errors: {field: message}}`` in one line."""
    data = json_of(answer)
    parts = [str(m) for m in data.get("errorMessages") or []]
    errors = data.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    return "; ".join(parts)[:400] or one_line(answer.text) or answer.reason_phrase


class JiraTracker:
    """The ticket port over named Jira Cloud targets."""

    vendor = "Jira"

    def __init__(
        self,
        targets: Mapping[str, TicketTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = {n: t for n, t in targets.items() if t.kind == "jira"}
        self.timeout = timeout
        self.transport = transport

    def _target(self, name: str) -> TicketTarget:
        target = self.targets.get(name)
        if target is None:
            raise Refused(f"no jira ticket target {name!r} is configured")
        return target

    def _client(self, name: str, target: TicketTarget) -> httpx.AsyncClient:
        email, token = target.email(), target.token()
        if not email or not token:
            missing = target.email_env if not email else target.token_env
            raise Refused(f"{name}: {missing} is not set")
        return httpx.AsyncClient(
            base_url=target.api_url,
            auth=httpx.BasicAuth(email, token),
            headers={"Accept": "application/json"},
            timeout=self.timeout,
            transport=self.transport,
        )

    def _refused(self, name: str, answer: httpx.Response) -> Refused:
        return Refused(f"{name}: Jira answered HTTP {answer.status_code}: {said(answer)}")

    def _ref(self, target: TicketTarget, issue: Mapping[str, Any]) -> TicketRef:
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        category = (status.get("statusCategory") or {}).get("key", "")
        name = str(status.get("name") or "")
        key = str(issue.get("key") or "")
        done = category == "done" or (bool(name) and name in target.done_states)
        return TicketRef(
            id=str(issue.get("id") or key),
            key=key,
            url=f"{target.api_url}/browse/{key}",
            state=name or str(category),
            done=done,
            version=str(fields.get("updated") or ""),
        )

    async def file(self, target: str, draft: TicketDraft) -> TicketRef:
        config = self._target(target)
        fields: dict[str, Any] = {
            "project": {"key": config.project},
            "summary": " ".join(draft.title.split())[:SUMMARY_MAX] or draft.marker,
            "issuetype": {"name": config.issue_type},
            "description": adf(draft.body, draft.link),
            "labels": list(dict.fromkeys([*config.labels, *draft.labels, draft.marker])),
        }
        priority = config.priority.get(draft.severity)
        if priority:
            fields["priority"] = {"name": priority}
        async with self._client(target, config) as client:
            answer = await send(
                client, target, "POST", "/rest/api/3/issue", json={"fields": fields}
            )
        if answer.status_code != 201:
            raise self._refused(target, answer)
        made = json_of(answer)
        key = str(made.get("key") or "")
        if not key:
            raise Unavailable(f"{target}: Jira's answer names no issue key", uncertain=True)
        return TicketRef(
            id=str(made.get("id") or key),
            key=key,
            url=f"{config.api_url}/browse/{key}",
            state="",
            done=False,
        )

    async def find(self, target: str, marker: str) -> TicketRef | None:
        config = self._target(target)
        jql = f'project = "{config.project}" AND labels = "{marker}" ORDER BY created ASC'
        params = {"jql": jql, "fields": "status,updated", "maxResults": "1"}
        async with self._client(target, config) as client:
            answer = await send(client, target, "GET", "/rest/api/3/search/jql", params=params)
        if answer.status_code != 200:
            raise self._refused(target, answer)
        issues = json_of(answer).get("issues") or []
        return self._ref(config, issues[0]) if issues else None

    async def read(self, target: str, ticket: TicketRef) -> TicketRef:
        config = self._target(target)
        path = f"/rest/api/3/issue/{ticket.key or ticket.id}"
        async with self._client(target, config) as client:
            answer = await send(client, target, "GET", path, params={"fields": "status,updated"})
        if answer.status_code != 200:
            raise self._refused(target, answer)
        now = self._ref(config, json_of(answer))
        return ticket if ticket.version and now.version == ticket.version else now


def jira_tracker(settings: Settings) -> JiraTracker | None:
    targets = {n: t for n, t in settings.tickets.targets.items() if t.kind == "jira"}
    return JiraTracker(targets) if targets else None
