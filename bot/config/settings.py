"""The one settings object: environment variables over an optional YAML file.

Precedence, highest first: ``WARROOM_*`` variables (nested with ``__``, e.g.
``WARROOM_SERVER__PORT``), the conventional names (``DATABASE_URL``,
``REDIS_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_SIGNING_SECRET``,
``SLACK_APP_TOKEN``), the YAML file (``--config`` or ``WARROOM_CONFIG``), then
the defaults. Secrets are accepted only from the environment and are masked in
every printout. :func:`load_settings` turns every validation error into a
:class:`~bot.errors.ConfigProblem` that names the file (and line) or the
variable, the key and what is wrong.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.classify import DEFAULT_RULES, OPS, Classifier, Condition, Op, SeverityRule
from bot.errors import ConfigError, ConfigProblem, InvalidSeverity
from bot.runbooks.settings import RunbookSettings
from bot.severity import PRESETS, SeverityLevel, SeverityScheme

ENV_PREFIX = "WARROOM_"
DEFAULT_DATABASE_URL = "sqlite:///./incidents.db"

#: Conventional variable names, read as if they were the nested keys they name.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
}

#: Keys that hold secrets: refused in the YAML file, masked when printed.
SECRET_KEYS: dict[tuple[str, ...], str] = {
    ("slack", "bot_token"): "SLACK_BOT_TOKEN",
    ("slack", "signing_secret"): "SLACK_SIGNING_SECRET",
    ("slack", "app_token"): "SLACK_APP_TOKEN",
    ("web", "token"): "WARROOM_WEB__TOKEN",
}

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
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] | None = None

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

    @field_validator("channel_pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        from bot.channels import check_pattern

        check_pattern(pattern)
        return pattern

    @property
    def connected(self) -> bool:
        return self.bot_token is not None


class WebSettings(_Section):
    token: SecretStr | None = None


class Settings(BaseSettings):
    """Everything warroom can be told. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    severity: SeveritySettings = SeveritySettings()
    incidents: IncidentSettings = IncidentSettings()
    slack: SlackSettings = SlackSettings()
    web: WebSettings = WebSettings()
    intake: IntakeSettings = IntakeSettings()
    webhooks: dict[str, WebhookSettings] = Field(default_factory=_default_webhooks)
    runbooks: RunbookSettings = RunbookSettings()
    templates_dir: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    config_file: Path | None = Field(default=None, exclude=True)

    @field_validator("webhooks")
    @classmethod
    def _endpoint_names(cls, hooks: dict[str, WebhookSettings]) -> dict[str, WebhookSettings]:
        bad = [n for n in hooks if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", n)]
        if bad:
            raise ValueError(f"endpoint names are lowercase letters, digits, - and _: {bad}")
        return hooks

    @model_validator(mode="after")
    def _slack_pair(self) -> Settings:
        slack = self.slack
        if slack.bot_token is not None and slack.signing_secret is None and slack.app_token is None:
            raise ValueError(
                "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP events) nor "
                "SLACK_APP_TOKEN (Socket Mode) is: set one of them"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment wins over it.
        return (env_settings, _AliasEnvSource(settings_cls), init_settings)

    def severity_scheme(self) -> SeverityScheme:
        return self.severity.build()

    def masked(self) -> dict[str, Any]:
        """The effective configuration with every secret and password masked."""
        data = self.model_dump(mode="json")
        for path in SECRET_KEYS:
            section = data[path[0]]
            section[path[1]] = "********" if section[path[1]] is not None else None
        data["database"]["url"] = mask_url(self.database.url)
        if self.redis.url:
            data["redis"]["url"] = mask_url(self.redis.url)
        return data


class _AliasEnvSource(PydanticBaseSettingsSource):
    """Reads ``DATABASE_URL``, ``SLACK_BOT_TOKEN`` and the other conventional names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for var, (section, key) in ENV_ALIASES.items():
            value = os.environ.get(var)
            if value:
                out.setdefault(section, {})[key] = value
        return out


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:********@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:********@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def config_path(explicit: str | Path | None) -> Path | None:
    """The YAML file to read: ``--config``, else ``WARROOM_CONFIG``, else none."""
    chosen = explicit or os.environ.get(f"{ENV_PREFIX}CONFIG")
    return Path(chosen) if chosen else None


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read, merge and validate; raise :class:`ConfigError` listing every problem."""
    path = config_path(config_file)
    data: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    problems: list[ConfigProblem] = []
    if path is not None:
        data, lines, problems = _read_yaml(path)
        if problems:
            raise ConfigError(problems)
    source = str(path) if path else "environment"
    problems = _secrets_in_file(data, lines, source)
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, data, lines, source)) from None
    return settings.model_copy(update={"config_file": path})


def _read_yaml(
    path: Path,
) -> tuple[dict[str, Any], dict[tuple[str, ...], int], list[ConfigProblem]]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}, [ConfigProblem(source=where, key="(file)", message="no such file")]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, {}, [ConfigProblem(source=where, key="(file)", message=f"cannot read: {exc}")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return (
            {},
            {},
            [
                ConfigProblem(
                    source=where, key="(syntax)", message=f"not valid YAML: {problem}", line=line
                )
            ],
        )
    if data is None:
        return {}, {}, []
    if not isinstance(data, dict):
        return (
            {},
            {},
            [
                ConfigProblem(
                    source=where, key="(top level)", message="must be a mapping of sections", line=1
                )
            ],
        )
    lines: dict[tuple[str, ...], int] = {}
    _map_lines(node, (), lines)
    return data, lines, []


def _map_lines(
    node: yaml.Node | None, path: tuple[str, ...], out: dict[tuple[str, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _map_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*path, str(index))
            out[key] = item.start_mark.line + 1
            _map_lines(item, key, out)


def _secrets_in_file(
    data: dict[str, Any], lines: dict[tuple[str, ...], int], source: str
) -> list[ConfigProblem]:
    problems = []
    for (section, key), env in SECRET_KEYS.items():
        block = data.get(section)
        if isinstance(block, dict) and block.get(key) is not None:
            problems.append(
                ConfigProblem(
                    source=source,
                    key=f"{section}.{key}",
                    message=f"secrets are read only from the environment: set {env} instead",
                    line=lines.get((section, key)),
                )
            )
    for section in ("database", "redis"):
        block = data.get(section)
        url = block.get("url") if isinstance(block, dict) else None
        if isinstance(url, str) and urlsplit(url).password is not None:
            var = "DATABASE_URL" if section == "database" else "REDIS_URL"
            problems.append(
                ConfigProblem(
                    source=source,
                    key=f"{section}.url",
                    message=f"this URL holds a password: set it in {var} instead",
                    line=lines.get((section, "url")),
                )
            )
    return problems


def _env_var_for(path: tuple[str, ...]) -> str | None:
    """The variable that set ``path``, if one did."""
    for var, alias in ENV_ALIASES.items():
        if path[: len(alias)] == alias and var in os.environ:
            return var
    for depth in range(len(path), 0, -1):
        var = ENV_PREFIX + "__".join(p.upper() for p in path[:depth])
        if var in os.environ:
            return var
    return None


def _explain(
    exc: ValidationError,
    data: dict[str, Any],
    lines: dict[tuple[str, ...], int],
    source: str,
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        path = tuple(str(p) for p in error["loc"])
        key = ".".join(path) or "(settings)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggest(path, data)
        env = _env_var_for(path) if path else None
        if env is not None:
            problems.append(ConfigProblem(source=f"environment {env}", key=key, message=message))
            continue
        line = None
        for depth in range(len(path), 0, -1):
            line = lines.get(path[:depth])
            if line is not None:
                break
        problems.append(ConfigProblem(source=source, key=key, message=message, line=line))
    return problems


def _suggest(path: tuple[str, ...], data: dict[str, Any]) -> str:
    model: type[BaseModel] = Settings
    for part in path[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    known = [k for k in model.model_fields if k != "config_file"]
    close = difflib.get_close_matches(path[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; known keys: {', '.join(known)}"
