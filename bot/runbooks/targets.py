"""Where steps run: named Postgres and Redis servers, HTTP services, operators' webhooks.

Secrets never sit in the YAML: a target names the environment variable that holds its DSN,
URL or token, and the value is read when a step runs. A variable that is not set makes that
step's result an error that says which variable to set; it does not stop the bot.

::

    runbooks:
      targets:
        postgres: {main: {dsn_env: APP_DATABASE_URL}}
        redis:    {cache: {url_env: APP_REDIS_URL}}
        http:     {app: {base_url: "http://app.internal:8000", token_env: APP_TOKEN}}
        webhooks: {ops: {url: "https://deploy.internal/hooks/warroom", token_env: OPS_TOKEN}}
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, ConfigDict, field_validator

TargetType = Literal["postgres", "redis", "http", "webhooks"]
TARGET_TYPES: tuple[TargetType, ...] = ("postgres", "redis", "http", "webhooks")

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class TargetUnavailable(Exception):
    """The target's secret is not in the environment (shown to the responder as an error)."""


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def secrets(self) -> list[str]:
        """Secret values this target would put in output, for redaction."""
        return []


def _env_name(value: str) -> str:
    if not _ENV.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _read_env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise TargetUnavailable(f"environment variable {name} ({what}) is not set")
    return value


class PostgresTarget(_Target):
    dsn_env: str

    _check = field_validator("dsn_env")(_env_name)

    def dsn(self) -> str:
        return _read_env(self.dsn_env, "the Postgres DSN")

    def secrets(self) -> list[str]:
        value = os.environ.get(self.dsn_env)
        if not value:
            return []
        out = [value]
        try:
            password = conninfo_to_dict(value).get("password")
        except psycopg.ProgrammingError:  # a broken DSN fails at connect time, with a message
            password = None
        if password:
            out.append(str(password))
        return out


class RedisTarget(_Target):
    url_env: str

    _check = field_validator("url_env")(_env_name)

    def url(self) -> str:
        return _read_env(self.url_env, "the Redis URL")

    def secrets(self) -> list[str]:
        value = os.environ.get(self.url_env)
        if not value:
            return []
        password = urlsplit(value).password
        return [value, password] if password else [value]


def _plain_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    if parts.password is not None or parts.username is not None:
        raise ValueError("this URL holds credentials: name the variable in token_env instead")
    if parts.query or parts.fragment:
        raise ValueError("the URL must not have a query or fragment")
    return value


class HttpTarget(_Target):
    base_url: str
    token_env: str | None = None

    _url = field_validator("base_url")(_plain_url)

    @field_validator("token_env")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    def token(self) -> str | None:
        return None if self.token_env is None else _read_env(self.token_env, "the API token")

    def secrets(self) -> list[str]:
        value = os.environ.get(self.token_env) if self.token_env else None
        return [value] if value else []


class WebhookTarget(_Target):
    url: str
    token_env: str | None = None

    _url = field_validator("url")(_plain_url)

    @field_validator("token_env")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)

    def token(self) -> str | None:
        return None if self.token_env is None else _read_env(self.token_env, "the webhook token")

    def secrets(self) -> list[str]:
        value = os.environ.get(self.token_env) if self.token_env else None
        return [value] if value else []


Target = PostgresTarget | RedisTarget | HttpTarget | WebhookTarget


class TargetsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    postgres: dict[str, PostgresTarget] = {}
    redis: dict[str, RedisTarget] = {}
    http: dict[str, HttpTarget] = {}
    webhooks: dict[str, WebhookTarget] = {}

    @field_validator("postgres", "redis", "http", "webhooks")
    @classmethod
    def _names(cls, targets: dict[str, _Target]) -> dict[str, _Target]:
        bad = [n for n in targets if not _NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"target names are lowercase letters, digits, - and _: {bad}")
        return targets

    def section(self, kind: TargetType) -> dict[str, Target]:
        return dict(getattr(self, kind))

    def get(self, kind: TargetType, name: str) -> Target | None:
        return self.section(kind).get(name)

    def secrets(self) -> list[str]:
        """Every secret value the targets hold (for redaction of step output)."""
        return [
            s for kind in TARGET_TYPES for t in self.section(kind).values() for s in t.secrets()
        ]

    def missing_env(self) -> list[str]:
        """``postgres.main: APP_DATABASE_URL`` for every target whose variable is unset."""
        out = []
        for kind in TARGET_TYPES:
            for name, target in self.section(kind).items():
                for var in ("dsn_env", "url_env", "token_env"):
                    env = getattr(target, var, None)
                    if env and not os.environ.get(env):
                        out.append(f"{kind}.{name}: {env}")
        return out
