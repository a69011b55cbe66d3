"""The ``export:`` section: where the post-mortem is kept (Confluence pages, a GitHub repository).

::

    export:
      targets:
        wiki:    {kind: confluence, url: https://acme.atlassian.net, space: OPS,
                  parent_id: "123456", email_env: CONFLUENCE_EMAIL, token_env: CONFLUENCE_TOKEN}
        repo:    {kind: github, repo: acme/postmortems, branch: main,
                  path: "postmortems/{key}.md", token_env: GITHUB_TOKEN}

Each target names the variables its credentials are read from; a variable that is not set is a
configuration error when the settings load (not a surprise at the first export).
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bot.config.sections import _Section

#: Placeholders a title or path pattern may use.
PLACEHOLDERS = ("key", "title")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return url.rstrip("/")


def _pattern(value: str, *, what: str) -> str:
    """A pattern with ``{key}`` (required: one document per incident) and ``{title}``."""
    names = _PLACEHOLDER.findall(value)
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}} in {what} {value!r} (use {{key}} and {{title}})"
        )
    if "key" not in names:
        raise ValueError(f"{what} {value!r} must contain {{key}}: one document per incident")
    if value.count("{") != len(names) or value.count("}") != len(names):
        raise ValueError(f"unbalanced braces in {what} {value!r}")
    return value


def _env_set(name: str) -> None:
    if not os.environ.get(name):
        raise ValueError(f"environment variable {name} is not set")


class ConfluenceTarget(_Section):
    """A Confluence Cloud space: one page per incident, under ``parent_id`` (REST API v2)."""

    kind: Literal["confluence"]
    url: str = Field(description="the site, e.g. https://acme.atlassian.net")
    space: str = Field(
        min_length=1, max_length=255, pattern=r"^[A-Za-z0-9~_]+$", description="space key"
    )
    parent_id: str | None = Field(
        default=None, pattern=r"^[0-9]{1,20}$", description="page the reviews go under"
    )
    email_env: str = Field(description="variable holding the Atlassian account's email")
    token_env: str = Field(description="variable holding that account's API token")
    title: str = Field(
        default="{key} post-mortem: {title}", max_length=200, description="page title pattern"
    )

    @field_validator("url")
    @classmethod
    def _site(cls, url: str) -> str:
        return _http_url(url).removesuffix("/wiki")

    @field_validator("title")
    @classmethod
    def _title(cls, title: str) -> str:
        return _pattern(title, what="title")

    @model_validator(mode="after")
    def _credentials_set(self) -> ConfluenceTarget:
        _env_set(self.email_env)
        _env_set(self.token_env)
        return self

    def credentials(self) -> tuple[str, str] | None:
        email, token = os.environ.get(self.email_env), os.environ.get(self.token_env)
        return (email, token) if email and token else None


class GitHubTarget(_Section):
    """A GitHub repository: the review committed as one Markdown file per incident."""

    kind: Literal["github"]
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    path: str = Field(default="postmortems/{key}.md", description="file path pattern")
    branch: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._/-]+$",
        description="branch committed to (else the repository's default)",
    )
    token_env: str = Field(description="variable holding a token with contents: write")
    url: str = Field(
        default="https://api.github.com",
        description="REST API base (GitHub Enterprise Server: https://host/api/v3)",
    )
    title: str = Field(
        default="{key} post-mortem: {title}", max_length=200, description="commit subject"
    )

    @field_validator("url")
    @classmethod
    def _api(cls, url: str) -> str:
        return _http_url(url)

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        _pattern(path, what="path")
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"path {path!r} must be relative, without empty, . or .. parts")
        return path

    @field_validator("title")
    @classmethod
    def _title(cls, title: str) -> str:
        return _pattern(title, what="title")

    @model_validator(mode="after")
    def _token_set(self) -> GitHubTarget:
        _env_set(self.token_env)
        return self

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None


ExportTarget = Annotated[ConfluenceTarget | GitHubTarget, Field(discriminator="kind")]

#: How each kind is named to a responder.
VENDORS = {"confluence": "Confluence", "github": "GitHub"}


class ExportSettings(_Section):
    targets: dict[str, ExportTarget] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _names(cls, targets: dict[str, ExportTarget]) -> dict[str, ExportTarget]:
        bad = [n for n in targets if not _NAME.fullmatch(n)]
        if bad:
            raise ValueError(
                f"target names are lowercase letters, digits, - and _ (at most 40): {bad[0]!r}"
            )
        return targets


def fill(pattern: str, *, key: str, title: str) -> str:
    """``pattern`` with its placeholders filled (validated to be only ``{key}``, ``{title}``)."""
    return pattern.replace("{key}", key).replace("{title}", title)
