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
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.config.export import ExportSettings as ExportSettings
from bot.config.sections import (
    DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL,
)
from bot.config.sections import (
    AlertmanagerSettings as AlertmanagerSettings,
)
from bot.config.sections import (
    DatabaseSettings as DatabaseSettings,
)
from bot.config.sections import (
    IncidentSettings as IncidentSettings,
)
from bot.config.sections import (
    IntakeSettings as IntakeSettings,
)
from bot.config.sections import (
    PagingSettings as PagingSettings,
)
from bot.config.sections import (
    RedisSettings as RedisSettings,
)
from bot.config.sections import (
    RoutingRule as RoutingRule,
)
from bot.config.sections import (
    ServerSettings as ServerSettings,
)
from bot.config.sections import (
    SeveritySettings as SeveritySettings,
)
from bot.config.sections import (
    SlackSettings as SlackSettings,
)
from bot.config.sections import (
    TicketSettings as TicketSettings,
)
from bot.config.sections import (
    WebhookSettings as WebhookSettings,
)
from bot.config.sections import (
    WebSettings as WebSettings,
)
from bot.config.sections import (
    _default_webhooks,
)
from bot.config.sections import (
    format_duration as format_duration,
)
from bot.config.sections import (
    mask_url as mask_url,
)
from bot.config.sections import (
    parse_duration as parse_duration,
)
from bot.config.statuspage import StatusPageTarget as StatusPageTarget
from bot.config.statuspage import check_names as _check_statuspage_names
from bot.errors import ConfigError, ConfigProblem, InvalidSeverity
from bot.incidents.severity import SeverityScheme
from bot.runbooks.settings import RunbookSettings

ENV_PREFIX = "WARROOM_"

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
    alertmanager: dict[str, AlertmanagerSettings] = Field(default_factory=dict)
    paging: PagingSettings = PagingSettings()
    tickets: TicketSettings = TicketSettings()
    statuspage: dict[str, StatusPageTarget] = Field(default_factory=dict)
    export: ExportSettings = ExportSettings()
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

    @field_validator("statuspage")
    @classmethod
    def _statuspage_names(cls, pages: dict[str, StatusPageTarget]) -> dict[str, StatusPageTarget]:
        return _check_statuspage_names(pages)

    @model_validator(mode="after")
    def _silence_targets(self) -> Settings:
        for name, hook in self.webhooks.items():
            if hook.alertmanager is not None and hook.alertmanager not in self.alertmanager:
                known = ", ".join(self.alertmanager) or "none configured"
                raise ValueError(
                    f"webhooks.{name}.alertmanager: no alertmanager target "
                    f"{hook.alertmanager!r} (known: {known})"
                )
        return self

    @model_validator(mode="after")
    def _paging_severities(self) -> Settings:
        scheme = self.severity_scheme()
        for index, rule in enumerate(self.paging.rules):
            for name in rule.severities or []:
                try:
                    scheme.get(name)
                except InvalidSeverity as error:
                    raise ValueError(f"paging.rules[{index}].severities: {error}") from None
        for name, target in self.paging.opsgenie.items():
            for level in target.priorities:
                try:
                    scheme.get(level)
                except InvalidSeverity as error:
                    raise ValueError(f"paging.opsgenie.{name}.priorities: {error}") from None
        return self

    @model_validator(mode="after")
    def _ticket_priorities(self) -> Settings:
        scheme = self.severity_scheme()
        for name, target in self.tickets.targets.items():
            for level in target.priority:
                try:
                    scheme.get(level)
                except InvalidSeverity as error:
                    raise ValueError(f"tickets.targets.{name}.priority: {error}") from None
        return self

    def silence_target(self, endpoint: str) -> str | None:
        """The alertmanager target for silences of ``endpoint``'s alerts: its own, else the only."""
        hook = self.webhooks.get(endpoint)
        if hook is not None and hook.alertmanager is not None:
            return hook.alertmanager
        return next(iter(self.alertmanager)) if len(self.alertmanager) == 1 else None

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
    repeated: list[ConfigProblem] = []
    _map_lines(node, (), lines, repeated, where)
    return data, lines, repeated


def _map_lines(
    node: yaml.Node | None,
    path: tuple[str, ...],
    out: dict[tuple[str, ...], int],
    repeated: list[ConfigProblem],
    where: str,
) -> None:
    """Each key's line; a key given twice in one mapping is a problem (YAML keeps the last
    silently, so a whole section written twice would lose its first copy)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key in out:
                repeated.append(
                    ConfigProblem(
                        source=where,
                        key=".".join(key),
                        message=f"given twice (first on line {out[key]}); merge the two",
                        line=line,
                    )
                )
            out[key] = line
            _map_lines(value_node, key, out, repeated, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*path, str(index))
            out[key] = item.start_mark.line + 1
            _map_lines(item, key, out, repeated, where)


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
