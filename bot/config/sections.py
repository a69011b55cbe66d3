"""The sections of the settings: one validated model per part of the YAML file.

Each section checks its own values (durations, URLs, severity rules, endpoints); how the whole
object is assembled from the environment and the file, and how mistakes are reported, is in
:mod:`bot.config.settings`.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.errors import InvalidSeverity
from bot.incidents.channel import check_pattern
from bot.incidents.severity import PRESETS, SeverityLevel, SeverityScheme
from bot.intake.classify import DEFAULT_RULES, OPS, Classifier, Condition, Op, SeverityRule

DEFAULT_DATABASE_URL = "sqlite:///./incidents.db"


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:********@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:********@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(value: object) -> object:
    """``"15m"``, ``"1h30m"``, ``"2d"``, ``"45s"`` or a number of seconds."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return timedelta(seconds=int(text))
        match = _DURATION.match(text)
        if not text or not match or not any(match.groups()):
            raise ValueError(f"not a duration: {value!r} (write e.g. 15m, 1h, 1h30m, 2d or 90s)")
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`: ``timedelta(minutes=90)`` → ``"1h30m"``."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out += f"{amount}{unit}"
    return out


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        # URLs may carry passwords: a repr (logs, tracebacks) shows them masked.
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" and isinstance(value, str) else value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = Field(
        default=None, description="Base URL people reach the server at (links in Slack)."
    )


class DatabaseSettings(_Section):
    url: str = Field(default=DEFAULT_DATABASE_URL, description="SQLite file or Postgres URL.")
    auto_migrate: bool = Field(
        default=True, description="Run pending migrations when the server starts."
    )
    connect_timeout: Duration = timedelta(seconds=5)
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = url.split(":", 1)[0].lower()
        if not (scheme.startswith("sqlite") or scheme.startswith("postgres")):
            raise ValueError(
                f"unsupported database {scheme!r}: use sqlite:///path.db or "
                "postgresql+psycopg://user@host/db"
            )
        return url


class RedisSettings(_Section):
    url: str | None = Field(default=None, description="redis://host:6379/0; unset = no Redis.")


class SeverityLevelSettings(_Section):
    name: str = Field(min_length=1, max_length=16)
    label: str = Field(min_length=1, max_length=40)
    response_time: Duration
    update_interval: Duration
    description: str = ""


_OPERATORS: tuple[Op, ...] = OPS


class ConditionSettings(_Section):
    """One operator and its operand, e.g. ``{gt: 95}`` or ``{in: [prod, production]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    equals: str | float | None = None
    regex: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ConditionSettings:
        given = [op for op in _OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_OPERATORS)} (got {given or 'none'})")
        return self

    def build(self, path: str) -> Condition:
        for op in _OPERATORS:
            value = getattr(self, "in_" if op == "in" else op)
            if value is not None:
                operand = tuple(value) if op == "in" else value
                return Condition(path, op, operand)
        raise AssertionError("validated to hold one operator")


def _equals_shorthand(value: object) -> object:
    """``labels.alertname: X`` means ``labels.alertname: {equals: X}``."""
    if isinstance(value, dict):
        return {k: v if isinstance(v, dict) else {"equals": v} for k, v in value.items()}
    return value


class SeverityRuleSettings(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$")
    severity: str = Field(min_length=1)
    match: Annotated[dict[str, ConditionSettings], BeforeValidator(_equals_shorthand)] = Field(
        min_length=1
    )

    @field_validator("match")
    @classmethod
    def _conditions(cls, match: dict[str, ConditionSettings]) -> dict[str, ConditionSettings]:
        for path, spec in match.items():
            spec.build(path)  # raises ValueError naming the problem
        return match

    def build(self) -> SeverityRule:
        return SeverityRule(
            self.name, self.severity, tuple(c.build(p) for p, c in self.match.items())
        )


class SeveritySettings(_Section):
    scheme: Literal["p1-p4", "p0-p3"] = "p1-p4"
    levels: list[SeverityLevelSettings] | None = Field(
        default=None, description="Your own levels, most severe first; replaces the scheme."
    )
    default: str | None = None
    rules: list[SeverityRuleSettings] = Field(
        default_factory=list, description="Your classification rules, tried with the defaults."
    )
    default_rules: bool = Field(default=True, description="Also use the runbooks' rules.")

    @field_validator("levels")
    @classmethod
    def _unique(cls, levels: list[SeverityLevelSettings] | None) -> object:
        if levels is not None:
            names = [lv.name.upper() for lv in levels]
            if not names:
                raise ValueError("give at least one level, or leave levels out")
            if len(set(names)) != len(names):
                raise ValueError(f"level names must be unique: {names}")
        return levels

    @field_validator("default")
    @classmethod
    def _default_exists(cls, default: str | None, info: ValidationInfo) -> str | None:
        if default is None:
            return None
        levels = info.data.get("levels")
        if levels is not None:
            names = [lv.name for lv in levels]
        else:
            names = PRESETS[info.data.get("scheme", "p1-p4")].names
        if default not in names:
            raise ValueError(f"{default!r} is not one of the levels {', '.join(names)}")
        return default

    @model_validator(mode="after")
    def _rule_levels(self) -> SeveritySettings:
        scheme = self.build()
        for index, rule in enumerate(self.rules):
            try:
                scheme.get(rule.severity)
            except InvalidSeverity as error:
                raise ValueError(f"rules[{index}] ({rule.name}): {error}") from None
        return self

    def classifier(self) -> Classifier:
        rules = [r.build() for r in self.rules]
        if self.default_rules:
            rules += DEFAULT_RULES
        return Classifier(self.build(), rules)

    def build(self) -> SeverityScheme:
        if self.levels is None:
            base = PRESETS[self.scheme]
            return SeverityScheme(base.levels, self.default or base.default)
        levels = tuple(
            SeverityLevel(lv.name, lv.label, lv.response_time, lv.update_interval, lv.description)
            for lv in self.levels
        )
        return SeverityScheme(levels, self.default or levels[len(levels) // 2].name)


class IncidentSettings(_Section):
    key_prefix: str = Field(default="INC", pattern=r"^[A-Z][A-Z0-9]{0,9}$")
    key_digits: int = Field(default=4, ge=1, le=9)
    roles: list[str] = Field(default_factory=lambda: ["commander", "communications", "scribe"])
    timezone: str = "UTC"
    #: In monitoring, once every alert has resolved: how long it stays quiet before the card
    #: offers "Resolve now" (and as long again before a reminder in the channel).
    resolve_quiet: Duration = timedelta(minutes=30)
    resolve_quiet_by_severity: dict[str, Duration] = Field(default_factory=dict)

    def quiet_for(self, severity: str) -> timedelta:
        """The quiet period of ``severity`` (``resolve_quiet`` unless that level has its own)."""
        return self.resolve_quiet_by_severity.get(severity, self.resolve_quiet)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: list[str]) -> list[str]:
        if "commander" not in roles:
            raise ValueError("roles must include 'commander'")
        bad = [r for r in roles if not re.fullmatch(r"[a-z][a-z0-9_]{0,29}", r)]
        if bad:
            raise ValueError(f"role names are lowercase words: {bad}")
        return roles


class IntakeSettings(_Section):
    reopen_window: Duration = Field(
        default=timedelta(hours=1),
        description="An alert firing again this soon after resolution reopens the incident.",
    )
    when_all_resolved: Literal["monitoring", "resolve", "nothing"] = "monitoring"
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "service"])
    service_labels: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["service", "service_name", "service.name", "job"],
        min_length=1,
        description="Labels that name an alert's service, tried in order: the first present wins.",
    )
    group_window: Duration = Field(
        default=timedelta(hours=24),
        description="A group silent this long no longer feeds its still-open incident.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    timeout: Duration = timedelta(seconds=8)


WebhookSource = Literal["alertmanager", "grafana", "pagerduty", "datadog", "events"]


class WebhookSettings(_Section):
    """One ``POST /webhooks/<name>`` endpoint. Secrets are named by environment variable."""

    source: WebhookSource
    token_env: str | None = Field(default=None, description="bearer token variable")
    basic_user: str | None = None
    basic_password_env: str | None = None
    signing_secret_env: str | None = Field(
        default=None, description="HMAC secret variable (Grafana, PagerDuty); commas rotate"
    )
    signature_header: str | None = None
    timestamp_header: str | None = None
    replay_window: Duration = Field(
        default=timedelta(minutes=5),
        description="signed timestamps further than this from now are refused (replays)",
    )
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] | None = None
    alertmanager: str | None = Field(
        default=None, description="the alertmanager target silences of its alerts go to"
    )

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSettings:
        if (self.basic_user is None) != (self.basic_password_env is None):
            raise ValueError("basic auth needs both basic_user and basic_password_env")
        if self.signing_secret_env and self.source not in ("grafana", "pagerduty"):
            raise ValueError(f"{self.source} does not sign its webhooks: use token_env")
        for name in (self.token_env, self.basic_password_env, self.signing_secret_env):
            if name is not None and not os.environ.get(name):
                raise ValueError(f"environment variable {name} is not set")
        return self

    def secret(self, which: Literal["token", "basic", "signing"]) -> str | None:
        name = {
            "token": self.token_env,
            "basic": self.basic_password_env,
            "signing": self.signing_secret_env,
        }[which]
        return os.environ.get(name) if name else None


class AlertmanagerSettings(_Section):
    """One Alertmanager that silences are created on (API v2). Its token from the environment."""

    url: str = Field(description="base URL, e.g. https://alertmanager.internal:9093")
    token_env: str | None = Field(default=None, description="bearer token variable")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.password is not None:
            raise ValueError("this URL holds a password: put the token in token_env instead")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _token_set(self) -> AlertmanagerSettings:
        if self.token_env is not None and not os.environ.get(self.token_env):
            raise ValueError(f"environment variable {self.token_env} is not set")
        return self

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None


class PagerDutyTarget(_Section):
    """One PagerDuty service paged through the Events API v2; its routing key from the env."""

    routing_key_env: str = Field(description="variable holding the integration's routing key")
    url: str = Field(
        default="https://events.pagerduty.com", description="Events API base (EU: events.eu…)"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _key_set(self) -> PagerDutyTarget:
        if not os.environ.get(self.routing_key_env):
            raise ValueError(f"environment variable {self.routing_key_env} is not set")
        return self

    def routing_key(self) -> str | None:
        return os.environ.get(self.routing_key_env) or None


OpsgeniePriority = Literal["P1", "P2", "P3", "P4", "P5"]


class OpsgenieTarget(_Section):
    """One Opsgenie team paged through the Alert API v2; its API key (GenieKey) from the env."""

    api_key_env: str = Field(description="variable holding the API integration's key")
    url: str = Field(
        default="https://api.opsgenie.com", description="Alert API base (EU: api.eu.opsgenie.com)"
    )
    team: str | None = Field(
        default=None, min_length=1, description="responder team name (else the key's own routing)"
    )
    priorities: dict[str, OpsgeniePriority] = Field(
        default_factory=dict,
        description="severity → P1..P5; the rest by rank (most severe P1, … capped at P5)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _key_set(self) -> OpsgenieTarget:
        if not os.environ.get(self.api_key_env):
            raise ValueError(f"environment variable {self.api_key_env} is not set")
        return self

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None


class PagingRule(_Section):
    """Which incidents page a target: every rule that matches pages its target."""

    service: str | None = Field(default=None, description="only incidents of this service")
    severities: list[str] | None = Field(default=None, description="only these severities")
    target: str = Field(min_length=1, description="a paging target's name")

    def matches(self, *, service: str | None, severity: str) -> bool:
        if self.service is not None and self.service != service:
            return False
        return self.severities is None or severity.upper() in (s.upper() for s in self.severities)


class EscalationStep(_Section):
    """One step of the escalation of an incident nobody acknowledged."""

    page: str | None = Field(default=None, description="the target this step pages")
    after: Duration | None = Field(
        default=None,
        description="first step: added to the severity's response time (default 0); later "
        "steps: after the previous one (default: the severity's response time)",
    )


class PagingSettings(_Section):
    pagerduty: dict[str, PagerDutyTarget] = Field(default_factory=dict)
    opsgenie: dict[str, OpsgenieTarget] = Field(default_factory=dict)
    rules: list[PagingRule] = Field(default_factory=list)
    escalation: list[EscalationStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> PagingSettings:
        both = sorted(set(self.pagerduty) & set(self.opsgenie))
        if both:
            raise ValueError(
                f"opsgenie.{both[0]}: {both[0]!r} is a pagerduty target too; a target's name "
                "must be unique across paging.pagerduty and paging.opsgenie"
            )
        return self

    @model_validator(mode="after")
    def _known_targets(self) -> PagingSettings:
        known = set(self.targets)
        named = [(f"rules[{n}].target", r.target) for n, r in enumerate(self.rules)]
        steps = enumerate(self.escalation)
        named += [(f"escalation[{n}].page", s.page) for n, s in steps if s.page]
        vendors = (("pagerduty", self.pagerduty), ("opsgenie", self.opsgenie))
        for where, name in named:
            if name not in known:
                listed = "; ".join(
                    f"paging.{vendor}: {', '.join(sorted(names)) or 'none'}"
                    for vendor, names in vendors
                )
                raise ValueError(f"{where}: no paging target {name!r} (known: {listed})")
        return self

    @property
    def targets(self) -> list[str]:
        """Every target's name, PagerDuty's first (the names are unique across vendors)."""
        return [*self.pagerduty, *self.opsgenie]


TicketKind = Literal["jira", "github"]
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_JIRA_PROJECT = re.compile(r"[A-Z][A-Z0-9_]{0,49}")


class TicketTarget(_Section):
    """One place follow-ups are filed: a Jira Cloud project or a GitHub repository."""

    kind: TicketKind = Field(description="jira (Jira Cloud REST v3) or github (GitHub Issues)")
    url: str | None = Field(
        default=None,
        description="Jira: the site, https://acme.atlassian.net; GitHub: API base "
        "(default https://api.github.com)",
    )
    token_env: str = Field(description="variable holding the Jira API token or GitHub token")
    email_env: str | None = Field(
        default=None, description="Jira: variable holding the account's email (basic auth)"
    )
    project: str | None = Field(default=None, description="Jira: the project key, e.g. OPS")
    repo: str | None = Field(default=None, description="GitHub: owner/name")
    issue_type: str = Field(default="Task", min_length=1, description="Jira: the issue type")
    labels: list[str] = Field(default_factory=list, description="labels every ticket gets")
    priority: dict[str, str] = Field(
        default_factory=dict, description="Jira: severity → priority name (others: none set)"
    )
    done_states: list[str] = Field(
        default_factory=list,
        description="Jira: status names that count as done besides the Done category; GitHub: "
        "the close reasons (state_reason) that count as done (default: any closed issue)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not label.strip() or any(c.isspace() for c in label):
                raise ValueError(f"{label!r}: a label is one word (no spaces)")
        return labels

    @model_validator(mode="after")
    def _per_kind(self) -> TicketTarget:
        if self.kind == "jira":
            if self.url is None:
                raise ValueError("a jira target needs url (the site, https://acme.atlassian.net)")
            if self.project is None or not _JIRA_PROJECT.fullmatch(self.project):
                raise ValueError("a jira target needs project: its key, e.g. OPS")
            if self.email_env is None:
                raise ValueError("a jira target needs email_env (the account's email)")
            if self.repo is not None:
                raise ValueError("repo is for github targets; a jira target names a project")
        else:
            if self.repo is None or not _REPO.fullmatch(self.repo):
                raise ValueError("a github target needs repo: owner/name, e.g. acme/platform")
            if self.project is not None or self.email_env is not None or self.priority:
                raise ValueError("project, email_env and priority are for jira targets")
        for var in (self.token_env, self.email_env):
            if var is not None and not os.environ.get(var):
                raise ValueError(f"environment variable {var} is not set")
        return self

    @property
    def api_url(self) -> str:
        return self.url or ("https://api.github.com" if self.kind == "github" else "")

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None

    def email(self) -> str | None:
        return os.environ.get(self.email_env) or None if self.email_env else None


class TicketSettings(_Section):
    """Follow-ups filed as tickets (``tickets:``): named targets and the readback's pace."""

    default: str | None = Field(default=None, description="the target used without tracker:")
    targets: dict[str, TicketTarget] = Field(default_factory=dict)
    poll_open: Duration = Field(
        default=timedelta(minutes=5), description="ticket readback while the incident is open"
    )
    poll_resolved: Duration = Field(
        default=timedelta(hours=1), description="ticket readback after it is resolved"
    )

    @field_validator("targets")
    @classmethod
    def _names(cls, targets: dict[str, TicketTarget]) -> dict[str, TicketTarget]:
        bad = [n for n in targets if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", n)]
        if bad:
            raise ValueError(f"target names are lowercase letters, digits, - and _: {bad}")
        return targets

    @model_validator(mode="after")
    def _default_known(self) -> TicketSettings:
        if self.default is not None and self.default not in self.targets:
            known = ", ".join(self.targets) or "none configured"
            raise ValueError(f"default: no ticket target {self.default!r} (known: {known})")
        for name, value in (("poll_open", self.poll_open), ("poll_resolved", self.poll_resolved)):
            if value < timedelta(seconds=30):
                raise ValueError(f"{name}: at least 30s")
        return self

    @property
    def default_target(self) -> str | None:
        """``default``, else the only target."""
        if self.default is not None:
            return self.default
        return next(iter(self.targets)) if len(self.targets) == 1 else None


def _default_webhooks() -> dict[str, WebhookSettings]:
    sources: tuple[WebhookSource, ...] = (
        "alertmanager",
        "grafana",
        "pagerduty",
        "datadog",
        "events",
    )
    return {source: WebhookSettings(source=source) for source in sources}


class RoutingRule(_Section):
    """Who is invited to an incident's channel: everyone of every rule that matches."""

    service: str | None = Field(default=None, description="only incidents of this service")
    severities: list[str] | None = Field(default=None, description="only these severities")
    users: list[str] = Field(default_factory=list, description="Slack user ids (U…)")
    usergroups: list[str] = Field(default_factory=list, description="user group ids (S…)")
    emails: list[str] = Field(default_factory=list, description="looked up with Slack")

    def matches(self, *, service: str | None, severity: str) -> bool:
        if self.service is not None and self.service != service:
            return False
        return self.severities is None or severity.upper() in (s.upper() for s in self.severities)


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL.")
    broadcast_channel: str | None = Field(default=None, description="e.g. #incidents")
    channel_pattern: str = Field(
        default="inc-{date}-{number}-{slug}",
        description="fields: {key}, {number}, {date}, {slug}, {severity}, {service}",
    )
    private_channels: bool = False
    routing: list[RoutingRule] = Field(default_factory=list)
    home_refresh: Duration = Field(
        default=timedelta(seconds=10),
        description="a person's App Home is published at most once per this interval",
    )

    @field_validator("channel_pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        check_pattern(pattern)
        return pattern

    @property
    def connected(self) -> bool:
        return self.bot_token is not None


class WebSettings(_Section):
    token: SecretStr | None = None
