"""A GitHub repository as the export port: the review committed as ``postmortems/<key>.md``.

Through the contents API (a token with ``contents: write`` on the repository)::

    GET /repos/{owner}/{repo}/contents/{path}?ref=<branch>   find: the file and its blob sha
    PUT /repos/{owner}/{repo}/contents/{path}                create, or update with ``sha``

The document's version is the file's blob sha: an update sends it, as GitHub requires. A 409
(the file changed since: the sha is stale) or a 422 saying no ``sha`` was supplied (the file
exists: a lost answer made it) reads the current sha and tries again; an update whose content
is already the file's makes no commit. The path pattern (``{key}``) and the branch are the
target's; without ``branch`` the repository's default branch is used.

Answers map onto :mod:`bot.ports.errors`: 400, 401, 403, 404 and 422 are :class:`Refused` with
GitHub's own ``message``; 429, and 403 with ``x-ratelimit-remaining: 0`` or a ``Retry-After``
(the primary and secondary rate limits), are :class:`Throttled`; 5xx and lost connections
:class:`Unavailable`.

Pull requests (a branch per incident and a PR to review the file) are not done here.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bot.config.export import GitHubTarget, fill
from bot.ports.errors import Refused, Unavailable
from bot.ports.export import ExportDocument, ExportRef
from integrations.http_errors import json_of, one_line, retry_after, send

TIMEOUT_S = 20.0
DEFAULT_RETRY_AFTER_S = 60.0
CONFLICT_RETRIES = 3
API_VERSION = "2022-11-28"


def path_of(config: GitHubTarget, key: str) -> str:
    return fill(config.path, key=key, title="")


class GitHubExporter:
    """The export port over the ``kind: github`` targets of ``export.targets``."""

    def __init__(
        self,
        targets: Mapping[str, GitHubTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self.transport = transport

    def _config(self, target: str) -> GitHubTarget:
        config = self.targets.get(target)
        if config is None:
            raise Refused(f"no github export target {target!r} is configured")
        return config

    def _client(self, target: str) -> httpx.AsyncClient:
        config = self._config(target)
        token = config.token()
        if token is None:
            raise Refused(f"{target}: {config.token_env} is not set")
        return httpx.AsyncClient(
            base_url=config.url,
            timeout=self.timeout,
            transport=self.transport,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "warroom",
            },
        )

    def _url(self, config: GitHubTarget, key: str) -> str:
        return f"/repos/{config.repo}/contents/{quote(path_of(config, key), safe='/')}"

    async def find(self, target: str, document: ExportDocument) -> ExportRef | None:
        config = self._config(target)
        async with self._client(target) as client:
            found = await self._read(client, target, config, document.key)
        return found[0] if found else None

    async def _read(
        self, client: httpx.AsyncClient, target: str, config: GitHubTarget, key: str
    ) -> tuple[ExportRef, bytes] | None:
        params = {"ref": config.branch} if config.branch else None
        answer = await _call(client, target, "GET", self._url(config, key), params=params)
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise _refused(target, answer)
        data = json_of(answer)
        if data.get("type") != "file":
            raise Refused(f"{target}: {path_of(config, key)} is a {data.get('type')}, not a file")
        try:
            content = base64.b64decode(str(data.get("content", "")))
        except ValueError:
            content = b""
        ref = ExportRef(id=str(data["path"]), url=data.get("html_url"), version=str(data["sha"]))
        return ref, content

    async def export(
        self, target: str, document: ExportDocument, existing: ExportRef | None
    ) -> ExportRef:
        config = self._config(target)
        content = document.markdown.encode("utf-8")
        sha = existing.version if existing is not None else None
        async with self._client(target) as client:
            for _ in range(CONFLICT_RETRIES):
                body: dict[str, Any] = {
                    "message": document.title,
                    "content": base64.b64encode(content).decode("ascii"),
                }
                if config.branch:
                    body["branch"] = config.branch
                if sha:
                    body["sha"] = sha
                url = self._url(config, document.key)
                answer = await _call(client, target, "PUT", url, json=body)
                if answer.status_code in (200, 201):
                    file = json_of(answer).get("content") or {}
                    return ExportRef(
                        id=str(file.get("path") or path_of(config, document.key)),
                        url=file.get("html_url"),
                        version=str(file.get("sha", "")),
                    )
                stale = answer.status_code == 409
                missing = answer.status_code == 422 and '"sha"' in _said(answer)
                if not (stale or missing):
                    raise _refused(target, answer)
                current = await self._read(client, target, config, document.key)
                if current is None:
                    sha = None
                    continue
                if current[1] == content:  # already what we would commit: no empty commit
                    return current[0]
                sha = current[0].version
        raise Unavailable(
            f"{target}: {path_of(config, document.key)} kept changing "
            f"(409 {CONFLICT_RETRIES} times)",
            uncertain=False,
        )


async def _call(
    client: httpx.AsyncClient, target: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """One request; rate limits, 5xx and lost connections raised, the rest returned."""
    return await send(client, target, method, url, said=_said, throttled=_throttled, **kwargs)


def _throttled(answer: httpx.Response) -> float | None:
    """429, and 403 with ``x-ratelimit-remaining: 0`` or a ``Retry-After`` (the primary and
    secondary rate limits): how long to wait; None for any other answer."""
    limited = answer.status_code == 403 and (
        answer.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in answer.headers
    )
    return _retry_after(answer) if answer.status_code == 429 or limited else None


def _refused(target: str, answer: httpx.Response) -> Refused:
    return Refused(f"{target}: HTTP {answer.status_code}: {_said(answer)}")


def _said(answer: httpx.Response) -> str:
    """GitHub's ``{message, errors?, documentation_url}``, else the text, in one line."""
    data = json_of(answer)
    message = data.get("message")
    if message:
        said = " ".join(str(message).split())
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            said += ": " + "; ".join(
                str(e.get("message") or e.get("code") or e) if isinstance(e, dict) else str(e)
                for e in errors
            )
        return said[:300]
    return one_line(answer.text) or answer.reason_phrase


def _retry_after(answer: httpx.Response) -> float:
    if "retry-after" in answer.headers:
        return retry_after(answer, DEFAULT_RETRY_AFTER_S)
    reset = answer.headers.get("x-ratelimit-reset")
    if reset is not None:
        try:
            return max(float(reset) - time.time(), 1.0)
        except ValueError:
            pass
    return DEFAULT_RETRY_AFTER_S
