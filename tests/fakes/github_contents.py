"""A strict GitHub repository contents API on loopback, held to GitHub's description.

``tests/data/github/contents_subset.json`` is the part of github/rest-api-description's
``api.github.com.json`` the export uses: ``GET`` and ``PUT
/repos/{owner}/{repo}/contents/{path}``. The stand-in serves exactly these for the repositories
it is given, and is as strict as GitHub: a token in ``Authorization`` (``Bearer`` or ``token``;
else 401 "Bad credentials"); the ``PUT`` body checked against the description's schema
(``message`` and ``content`` required, types; 422 "Invalid request." with the problems);
``content`` must be Base64 (422); updating an existing file needs its blob ``sha`` (422
``"sha" wasn't supplied``) and the current one (409 "<path> does not match <sha>"); an unknown
branch is 404. Every file keeps its blob sha as git computes it (``sha1("blob <n>\\0" +
content)``); every accepted ``PUT`` is one commit in ``commits``.

Read back with :meth:`file` (the text on a branch) and :meth:`sha`.

Faults: ``fail_next`` (statuses answered before anything is applied: 429, 500, or 403 with
``x-ratelimit-remaining: 0`` as GitHub's primary rate limit answers), ``lose_next`` (that many
``PUT``s applied and then their connection dropped unanswered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.openapi import Spec
from tests.fakes.standin import Reply, Standin

SPEC = Spec(Path(__file__).resolve().parents[1] / "data" / "github" / "contents_subset.json")
ROUTE = "/repos/{owner}/{repo}/contents/{path}"
DOCS = "https://docs.github.com/rest/repos/contents#create-or-update-file-contents"


def blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _error(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": DOCS, **extra}


@dataclass
class Commit:
    branch: str
    path: str
    message: str
    sha: str


@dataclass
class FakeGitHubContents(Standin):
    """``with FakeGitHubContents(token, repos={"acme/pm"}) as gh:`` serves ``gh.url``."""

    METHODS = ("GET", "PUT", "POST", "DELETE")

    token: str
    repos: set[str] = field(default_factory=lambda: {"acme/postmortems"})
    default_branch: str = "main"
    branches: set[str] = field(default_factory=lambda: {"main"})
    fail_next: list[int] = field(default_factory=list)
    lose_next: int = 0
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (repo, branch, path)
    commits: list[Commit] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def file(self, repo: str, path: str, branch: str | None = None) -> str | None:
        content = self.files.get((repo, branch or self.default_branch, path))
        return content.decode("utf-8") if content is not None else None

    def sha(self, repo: str, path: str, branch: str | None = None) -> str | None:
        content = self.files.get((repo, branch or self.default_branch, path))
        return blob_sha(content) if content is not None else None

    def write(self, repo: str, path: str, text: str, branch: str | None = None) -> None:
        """Someone commits to the file by hand."""
        self.files[(repo, branch or self.default_branch, path)] = text.encode()

    def _content_json(self, repo: str, branch: str, path: str, content: bytes) -> dict[str, Any]:
        sha = blob_sha(content)
        api = f"{self.url}/repos/{repo}/contents/{path}?ref={branch}"
        html = f"https://github.com/{repo}/blob/{branch}/{path}"
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(content),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(content).decode(),
            "sha": sha,
            "url": api,
            "git_url": f"{self.url}/repos/{repo}/git/blobs/{sha}",
            "html_url": html,
            "download_url": f"https://raw.githubusercontent.com/{repo}/{branch}/{path}",
            "_links": {
                "self": api,
                "git": f"{self.url}/repos/{repo}/git/blobs/{sha}",
                "html": html,
            },
        }

    def answer(
        self, method: str, target: str, auth: str | None, raw: bytes
    ) -> tuple[int, dict[str, str], Any] | None:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, parts.path))
            segments = parts.path.split("/", 5)
            if len(segments) < 6 or segments[1] != "repos" or segments[4] != "contents":
                return 404, {}, _error("Not Found")
            repo, path = f"{segments[2]}/{segments[3]}", unquote(segments[5])
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return 401, {}, _error("Bad credentials", status="401")
            if repo not in self.repos:
                return 404, {}, _error("Not Found", status="404")
            if self.fail_next:
                code = self.fail_next.pop(0)
                if code == 403:
                    headers = {
                        "x-ratelimit-limit": "5000",
                        "x-ratelimit-remaining": "0",
                        "x-ratelimit-reset": str(int(time.time()) + 2),
                    }
                    message = "API rate limit exceeded for user ID 1."
                    return 403, headers, _error(message, status="403")
                if code == 429:
                    return 429, {"retry-after": "1"}, _error("Too many requests", status="429")
                return code, {}, _error("Server Error", status=str(code))
            if method == "GET":
                branch = query.get("ref", [self.default_branch])[0]
                content = self.files.get((repo, branch, path))
                if branch not in self.branches:
                    return 404, {}, _error(f"No commit found for the ref {branch}", status="404")
                if content is None:
                    return 404, {}, _error("Not Found", status="404")
                return 200, {}, self._content_json(repo, branch, path, content)
            if method == "PUT":
                result = self._put(repo, path, raw)
                if result[0] in (200, 201) and self.lose_next:
                    self.lose_next -= 1
                    return None
                return result
            return 404, {}, _error("Not Found", status="404")

    def _put(self, repo: str, path: str, raw: bytes) -> tuple[int, dict[str, str], Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, _error("Problems parsing JSON", status="400")
        problems = SPEC.problems(body, SPEC.request_schema("put", ROUTE))
        if problems:
            return 422, {}, _error("Invalid request.\n\n" + "\n".join(problems), status="422")
        try:
            content = base64.b64decode(body["content"], validate=True)
        except (binascii.Error, ValueError):
            return 422, {}, _error("content is not valid Base64", status="422")
        branch = body.get("branch") or self.default_branch
        if branch not in self.branches:
            return 404, {}, _error(f"Branch {branch} not found", status="404")
        current = self.files.get((repo, branch, path))
        sha = body.get("sha")
        if current is not None and not sha:
            return 422, {}, _error('Invalid request.\n\n"sha" wasn\'t supplied.', status="422")
        if current is not None and sha != blob_sha(current):
            return 409, {}, _error(f"{path} does not match {sha}", status="409")
        self.files[(repo, branch, path)] = content
        commit_sha = hashlib.sha1(
            f"{len(self.commits)}:{path}".encode(), usedforsecurity=False
        ).hexdigest()
        self.commits.append(Commit(branch, path, body["message"], commit_sha))
        answer = {
            "content": self._content_json(repo, branch, path, content),
            "commit": {
                "sha": commit_sha,
                "html_url": f"https://github.com/{repo}/commit/{commit_sha}",
                "message": body["message"],
            },
        }
        del answer["content"]["content"], answer["content"]["encoding"]
        return (200 if current is not None else 201), {}, answer

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply | None:
        return self.answer(method, path, headers.get("Authorization"), body)
