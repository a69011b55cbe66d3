"""A strict GitHub REST API (issues endpoints only) on loopback, checked against its description.

Serves ``POST``/``GET /repos/{owner}/{repo}/issues`` and ``GET
/repos/{owner}/{repo}/issues/{issue_number}`` as ``tests/data/github/issues_subset.json``
describes them. It wants ``Authorization: Bearer <token>`` (401 ``Bad credentials``), ``Accept:
application/vnd.github+json`` and ``X-GitHub-Api-Version: 2022-11-28`` (400 otherwise); a
create body with a ``title``, a string ``body`` and string labels (422 with
``{message, errors, documentation_url}``); query enums as the description lists them. Every
issue has an ETag; a GET with a matching ``If-None-Match`` is 304. :meth:`FakeGitHub.close`
closes an issue as a person would (``state_reason`` one of the description's). ``faults``: the
next requests answered 429 (``Retry-After``), 403 with ``x-ratelimit-remaining: 0``, or 500,
before anything is applied.
"""

from __future__ import annotations

import hashlib
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

SPEC_FILE = Path(__file__).resolve().parents[1] / "data" / "github" / "issues_subset.json"
DOCS = "https://docs.github.com/rest/issues/issues"
RATE_LIMITED = 4031  # a fault: 403 with x-ratelimit-remaining: 0


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return data


def _param(name: str) -> dict[str, Any]:
    data: dict[str, Any] = spec()["components"]["parameters"][name]
    return data


def query_enum(path: str, name: str) -> list[str]:
    """The enum of query parameter ``name`` of ``GET path`` (inline or a ``$ref``)."""
    for param in spec()["paths"][path]["get"]["parameters"]:
        if "$ref" in param:
            param = _param(param["$ref"].rsplit("/", 1)[1])
        if param["name"] == name:
            return list(param["schema"]["enum"])
    raise KeyError(name)


def state_reasons() -> list[str]:
    schema = spec()["paths"]["/repos/{owner}/{repo}/issues/{issue_number}"]["patch"]
    props = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]
    return list(props["state_reason"]["enum"])


def create_problems(body: Any) -> list[dict[str, str]]:
    """GitHub's 422 ``errors`` for a create body, per the description's request schema."""
    if not isinstance(body, dict):
        return [{"resource": "Issue", "code": "invalid", "field": "body"}]
    schema = spec()["paths"]["/repos/{owner}/{repo}/issues"]["post"]["requestBody"]
    props = schema["content"]["application/json"]["schema"]
    problems = [
        {"resource": "Issue", "code": "missing_field", "field": name}
        for name in props["required"]
        if name not in body
    ]
    title = body.get("title")
    if "title" in body and (not isinstance(title, str | int) or isinstance(title, bool)):
        problems.append({"resource": "Issue", "code": "invalid", "field": "title"})
    elif isinstance(title, str) and not title.strip():
        problems.append({"resource": "Issue", "code": "missing_field", "field": "title"})
    if "body" in body and not isinstance(body["body"], str):
        problems.append({"resource": "Issue", "code": "invalid", "field": "body"})
    labels = body.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str | dict) for x in labels):
        problems.append({"resource": "Issue", "code": "invalid", "field": "labels"})
    known = set(props["properties"])
    problems += [
        {"resource": "Issue", "code": "invalid", "field": name}
        for name in body
        if name not in known
    ]
    return problems


@dataclass
class FakeGitHub(Standin):
    token: str
    repos: set[str] = field(default_factory=lambda: {"acme/platform"})
    faults: list[int] = field(default_factory=list)
    issues: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    refused: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._clock = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def _tick(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def close(self, repo: str, number: int, reason: str = "completed") -> None:
        """Close issue ``number`` as a person would."""
        if reason not in state_reasons():
            raise ValueError(f"state_reason {reason!r} is not one of {state_reasons()}")
        with self._lock:
            issue = self.issues[(repo, number)]
            issue |= {"state": "closed", "state_reason": reason, "closed_at": self._tick()}
            issue["updated_at"] = issue["closed_at"]

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            code, extra, data = self._answer(method, target, headers, body)
            self.requests.append((method, urlsplit(target).path, code))
            if code >= 400:
                self.refused.append((code, data))
            return code, extra, data

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if self.faults:
            code = self.faults.pop(0)
            if code == 429:
                return 429, {"Retry-After": "1"}, _error("You have exceeded a rate limit.")
            if code == RATE_LIMITED:
                reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "0"}
                return 403, reset, _error("API rate limit exceeded for user.")
            return code, {}, _error("Server Error")
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, _error("Bad credentials", "https://docs.github.com/rest")
        if headers.get("x-github-api-version") != "2022-11-28":
            return 400, {}, _error("Unsupported 'X-GitHub-Api-Version' header.")
        if "application/vnd.github+json" not in (headers.get("accept") or ""):
            return 415, {}, _error("Unsupported 'Accept' header.")
        parts = urlsplit(target)
        segments = parts.path.strip("/").split("/")
        if len(segments) < 4 or segments[0] != "repos" or segments[3] != "issues":
            return 404, {}, _error("Not Found")
        repo = f"{segments[1]}/{segments[2]}"
        if repo not in self.repos:
            return 404, {}, _error("Not Found")
        if len(segments) == 4 and method == "POST":
            return self._create(repo, body)
        if len(segments) == 4 and method == "GET":
            return self._list(repo, parse_qs(parts.query))
        if len(segments) == 5 and method == "GET" and segments[4].isdigit():
            issue = self.issues.get((repo, int(segments[4])))
            if issue is None:
                return 404, {}, _error("Not Found")
            etag = _etag(issue)
            if headers.get("if-none-match") == etag:
                return 304, {"ETag": etag}, ""
            return 200, {"ETag": etag}, issue
        return 404, {}, _error("Not Found")

    def _create(self, repo: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, _error("Problems parsing JSON")
        problems = create_problems(body)
        if problems:
            return 422, {}, {**_error("Validation Failed"), "errors": problems}
        number = len([k for k in self.issues if k[0] == repo]) + 1
        now = self._tick()
        issue = {
            "id": 5000 + number,
            "node_id": f"I_{number}",
            "url": f"{self.url}/repos/{repo}/issues/{number}",
            "html_url": f"https://github.example/{repo}/issues/{number}",
            "number": number,
            "state": "open",
            "state_reason": None,
            "title": str(body["title"]),
            "body": body.get("body"),
            "labels": [
                {"name": x if isinstance(x, str) else x.get("name")} for x in body.get("labels", [])
            ],
            "closed_at": None,
            "created_at": now,
            "updated_at": now,
        }
        self.issues[(repo, number)] = issue
        headers = {"Location": issue["url"], "ETag": _etag(issue)}
        return 201, headers, issue

    def _list(self, repo: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        path = "/repos/{owner}/{repo}/issues"
        checks = (
            ("state", query_enum(path, "state")),
            ("sort", query_enum(path, "sort")),
            ("direction", query_enum(path, "direction")),
        )
        for name, allowed in checks:
            given = query.get(name)
            if given and given[0] not in allowed:
                return 422, {}, {**_error("Validation Failed"), "errors": [
                    {"resource": "Issue", "field": name, "code": "invalid"}]}  # fmt: skip
        state = (query.get("state") or ["open"])[0]
        found = [i for (r, _), i in self.issues.items() if r == repo]
        found = [i for i in found if state == "all" or i["state"] == state]
        if (query.get("direction") or ["desc"])[0] == "desc":
            found.reverse()
        per_page = min(int((query.get("per_page") or ["30"])[0]), 100)
        return 200, {}, found[:per_page]

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        return self.answer(method, path, lower(headers), body)

    def filed(self, repo: str = "acme/platform") -> list[dict[str, Any]]:
        return [i for (r, _), i in sorted(self.issues.items()) if r == repo]


def _etag(issue: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(issue, sort_keys=True).encode()).hexdigest()[:20]
    return f'W/"{digest}"'


def _error(message: str, docs: str = DOCS) -> dict[str, Any]:
    return {"message": message, "documentation_url": docs}
