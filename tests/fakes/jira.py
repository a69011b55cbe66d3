"""A strict Jira Cloud (REST v3, issues) on loopback, checked against Atlassian's description.

Serves ``POST /rest/api/3/issue``, ``GET /rest/api/3/issue/{issueIdOrKey}`` and
``GET /rest/api/3/search/jql`` as ``tests/data/jira/platform_v3_subset.json`` describes them,
and refuses what Jira refuses: no or wrong basic credentials (401), a body that is not the
``IssueUpdateDetails`` object or whose ``fields`` is not an object (400), a missing project,
summary or issue type, an unknown project, issue type or priority, a label with a space, a
``description`` that is not an Atlassian Document Format ``doc`` (400 with
``{errorMessages, errors}``). Issues are kept (``issues``, by key); :meth:`FakeJira.transition`
moves one to another status as a person would. ``faults`` are answered before anything is
applied: each a status (429 with ``Retry-After``, 500, 503) for the next requests in turn.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.standin import Reply, Standin, lower

SPEC_FILE = Path(__file__).resolve().parents[1] / "data" / "jira" / "platform_v3_subset.json"
#: Jira's status categories and a status of each (``statusCategory.key``).
STATUSES = {"To Do": "new", "In Progress": "indeterminate", "Done": "done", "Won't Do": "done"}
_ADF_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard"}
_ADF_BLOCK = {"paragraph", "heading", "bulletList", "orderedList", "codeBlock", "rule"}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return data


def adf_problems(doc: Any) -> list[str]:
    """What makes ``doc`` not an ADF document (the shape Jira's v3 API requires)."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return ["Operation value must be an Atlassian Document (type doc, version 1)."]
    problems: list[str] = []
    for block in doc.get("content") or []:
        if not isinstance(block, dict) or block.get("type") not in _ADF_BLOCK:
            problems.append(f"Unsupported top-level node: {block!r:.60}")
            continue
        for node in block.get("content") or []:
            kind = node.get("type") if isinstance(node, dict) else None
            if kind not in _ADF_INLINE:
                problems.append(f"Unsupported inline node: {node!r:.60}")
            elif kind == "text" and not node.get("text"):
                problems.append("A text node must have non-empty text.")
            for mark in node.get("marks") or [] if isinstance(node, dict) else []:
                if mark.get("type") == "link" and not (mark.get("attrs") or {}).get("href"):
                    problems.append("A link mark needs attrs.href.")
    return problems


@dataclass
class FakeJira(Standin):
    email: str
    token: str
    projects: set[str] = field(default_factory=lambda: {"OPS"})
    issue_types: set[str] = field(default_factory=lambda: {"Task", "Bug"})
    priorities: set[str] = field(default_factory=lambda: {"Highest", "High", "Medium", "Low"})
    faults: list[int] = field(default_factory=list)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._clock = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def transition(self, key: str, status: str) -> None:
        """Move issue ``key`` to ``status`` (one of :data:`STATUSES`), as a person would."""
        with self._lock:
            fields = self.issues[key]["fields"]
            fields["status"] = _status(status)
            fields["updated"] = self._tick()

    # -- the API --------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            path = urlsplit(target).path
            self.requests.append((method, path))
            if self.faults:
                code = self.faults.pop(0)
                extra = {"Retry-After": "1"} if code == 429 else {}
                return code, extra, _error(["Jira is busy; try again later."])
            if headers.get("authorization") != self._auth():
                return 401, {}, _error(["You are not authenticated. Authentication required."])
            if method == "POST" and path == "/rest/api/3/issue":
                return self._create(body)
            if method == "GET" and path == "/rest/api/3/search/jql":
                return self._search(parse_qs(urlsplit(target).query))
            prefix = "/rest/api/3/issue/"
            if method == "GET" and path.startswith(prefix) and "/" not in path[len(prefix) :]:
                issue = self._find(path[len(prefix) :])
                if issue is None:
                    return 404, {}, _error(["Issue does not exist or you do not have permission."])
                return 200, {}, issue
            return 404, {}, _error([f"No such resource: {method} {path}"])

    def _auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()

    def _find(self, id_or_key: str) -> dict[str, Any] | None:
        if id_or_key in self.issues:
            return self.issues[id_or_key]
        return next((i for i in self.issues.values() if i["id"] == id_or_key), None)

    def _create(self, body: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            data = json.loads(body)
        except ValueError:
            return self._refuse(400, _error(["Unexpected character in the request body."]))
        if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
            return self._refuse(400, _error([], {"fields": "fields must be an object"}))
        fields = data["fields"]
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            errors["project"] = "Specify a valid project ID or key"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255 or "\n" in summary:
            errors["summary"] = "Summary must be less than 255 characters and one line."
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            errors["issuetype"] = "Specify an issue type"
        if "priority" in fields and (fields["priority"] or {}).get("name") not in self.priorities:
            errors["priority"] = "Specify the Priority (name) in the string format"
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(
            not isinstance(label, str) or not label or " " in label for label in labels
        ):
            errors["labels"] = "The label must not contain spaces."
        if "description" in fields:
            problems = adf_problems(fields["description"])
            if problems:
                errors["description"] = " ".join(problems)
        if errors:
            return self._refuse(400, _error([], errors))
        number = len(self.issues) + 1
        key = f"{project}-{number}"
        issue = {
            "id": str(10000 + number),
            "key": key,
            "self": f"{self.url}/rest/api/3/issue/{10000 + number}",
            "fields": {
                **fields,
                "status": _status("To Do"),
                "created": self._tick(),
                "updated": self._tick(),
            },
        }
        self.issues[key] = issue
        return 201, {}, {"id": issue["id"], "key": key, "self": issue["self"]}

    def _search(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        jql = (query.get("jql") or [""])[0]
        terms = dict(
            (name.strip(), value.strip().strip('"'))
            for part in jql.split(" ORDER BY ")[0].split(" AND ")
            if "=" in part
            for name, value in [part.split("=", 1)]
        )
        if not terms:
            return self._refuse(400, _error(["Unbounded JQL queries are not allowed here."]))
        found = [
            i
            for i in self.issues.values()
            if ("project" not in terms or i["key"].split("-")[0] == terms["project"])
            and ("labels" not in terms or terms["labels"] in i["fields"].get("labels", []))
        ]
        limit = int((query.get("maxResults") or ["50"])[0])
        return 200, {}, {"issues": found[:limit], "isLast": True}

    def _refuse(self, code: int, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        self.refused.append((code, body))
        return code, {}, body

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        return self.answer(method, path, lower(headers), body)


def _status(name: str) -> dict[str, Any]:
    key = STATUSES[name]
    return {"name": name, "statusCategory": {"key": key, "name": name}}


def _error(messages: list[str], errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"errorMessages": messages, "errors": errors or {}}
