"""Runbooks as data: the YAML format, its models, and loading with ``file:line`` errors.

A file holds one runbook (a mapping) or a list of them::

    id: db-connection-exhaustion          # lowercase letters, digits, - and _
    title: Database connection exhaustion
    match:                                # when to suggest it (any one alert suffices)
      alerts: [CriticalConnectionPoolUtilization]       # alert names (alertname)
      labels: ["service=~api|web", "env!=staging"]      # Prometheus-style matchers, all must hold
      runbook_urls: ["https://wiki.example.com/db-connections"]  # an alert linking here matches
    diagnostics:
      - id: connections_by_state
        title: Connections by state
        kind: postgres                    # a registered kind: postgres, redis, http, webhook…
        target: main                      # a name under runbooks.targets.<the kind's section>
        timeout: 10s
        params:
          minutes: {type: int, default: 10, min: 0, max: 1440}
        sql: |                            # kind keys: sql / command / method, path… / action…
          SELECT state, count(*) AS connections FROM pg_stat_activity
          WHERE datname = current_database() GROUP BY state
        thresholds:
          - {metric: connections, aggregate: sum, green: "< 50", red: "> 80"}
    mitigations:
      - id: terminate_idle
        title: Terminate idle connections
        kind: postgres
        target: main
        preview: idle_connections         # a diagnostic of this runbook: what it would touch
        suggested_by:                     # offered on the card when these latest results grade so
          - {diagnostic: idle_connections, grades: [yellow, red]}
        allowed: {roles: [commander], users: [U024BE7LH], groups: [S0614TZR7]}
        two_person: false                 # true: a second allowed person must approve
        timeout: 30s
        params: {minutes: {type: int, default: 10, min: 0, max: 1440}}
        sql: SELECT pg_terminate_backend(pid) FROM … WHERE … > make_interval(mins => %(minutes)s)

Step parameters are declared with their type, bounds and enum (see
:mod:`bot.runbooks.params`); thresholds are described in :mod:`bot.runbooks.grading`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator

from bot.errors import ConfigError, ConfigProblem
from bot.runbooks.errors import StepNotFound
from bot.runbooks.grading import Threshold
from bot.runbooks.kinds import KINDS, StepKind
from bot.runbooks.params import Duration, Param
from bot.runbooks.targets import TargetsConfig

ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*")
_MITIGATION_KEYS = ("preview", "allowed", "two_person", "suggested_by")
MAX_TIMEOUT = timedelta(minutes=10)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Allowed(_Strict):
    """Who may request, approve and confirm a mitigation: any one of these suffices."""

    roles: list[str] = []
    users: list[str] = []
    groups: list[str] = []

    def admits(self, *, actor: str, roles: Iterable[str], groups: Iterable[str]) -> bool:
        return (
            actor in self.users
            or bool(set(roles) & set(self.roles))
            or bool(set(groups) & set(self.groups))
        )

    def merged(self, other: Allowed) -> Allowed:
        return Allowed(
            roles=sorted({*self.roles, *other.roles}),
            users=sorted({*self.users, *other.users}),
            groups=sorted({*self.groups, *other.groups}),
        )

    def describe(self) -> str:
        parts = []
        if self.roles:
            parts.append("incident roles " + ", ".join(self.roles))
        if self.users:
            parts.append("users " + ", ".join(f"<@{u}>" for u in self.users))
        if self.groups:
            parts.append("groups " + ", ".join(f"<!subteam^{g}>" for g in self.groups))
        return "; ".join(parts) or "nobody (add a grant in runbooks.grants)"


class LabelMatcher(_Strict):
    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> LabelMatcher:
        found = _MATCHER.fullmatch(text)
        if not found:
            raise ValueError(
                f"{text!r} is not a label matcher (write name=value, name!=value, "
                "name=~regex or name!~regex)"
            )
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"{text!r}: not a regular expression ({error})") from None
        return cls(name=name, op=op, value=value)

    def holds(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


class AlertLike(Protocol):
    """What matching reads of an alert (both ``Alert`` rows and ``NormalizedAlert``)."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    @property
    def links(self) -> Mapping[str, str]: ...

    @property
    def summary(self) -> str: ...


def runbook_url(alert: AlertLike) -> str | None:
    for url in (
        alert.links.get("runbook"),
        alert.annotations.get("runbook_url"),
        alert.annotations.get("runbook"),
    ):
        if url:
            return url
    return None


def _normal_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


class Match(_Strict):
    alerts: list[str] = []
    labels: list[str] = []
    runbook_urls: list[str] = []

    @field_validator("labels")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        for text in value:
            LabelMatcher.parse(text)
        return value

    def matchers(self) -> list[LabelMatcher]:
        return [LabelMatcher.parse(t) for t in self.labels]

    def score(self, alert: AlertLike) -> int:
        """3: the alert links this runbook; 2: name (and labels) match; 1: labels match."""
        url = runbook_url(alert)
        if url and _normal_url(url) in {_normal_url(u) for u in self.runbook_urls}:
            return 3
        if not self.alerts and not self.labels:
            return 0
        name = alert.labels.get("alertname") or alert.summary
        if self.alerts and name not in self.alerts:
            return 0
        if not all(m.holds(alert.labels) for m in self.matchers()):
            return 0
        return 2 if self.alerts else 1


class Step(BaseModel):
    """A diagnostic step. Keys other than these belong to the step's kind."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    title: str
    kind: str
    target: str
    description: str = ""
    params: dict[str, Param] = {}
    thresholds: list[Threshold] = []
    timeout: Duration = timedelta(seconds=10)

    _spec: Any = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID.fullmatch(value):
            raise ValueError("ids are lowercase letters, digits, - and _ (at most 63)")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, Param]) -> dict[str, Param]:
        bad = [n for n in value if not PARAM_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"parameter names are lowercase words: {bad}")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= MAX_TIMEOUT:
            raise ValueError("timeout must be between 100ms and 10m")
        return value

    @property
    def spec(self) -> Any:
        """The kind's own keys, validated by the kind's ``spec_model`` when loaded."""
        return self._spec

    @property
    def timeout_s(self) -> float:
        return self.timeout.total_seconds()


class SuggestedBy(_Strict):
    """A diagnostic of the runbook whose latest result, graded one of ``grades``, suggests it."""

    diagnostic: str
    grades: list[Literal["yellow", "red"]] = ["yellow", "red"]

    @field_validator("grades")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one grade: yellow, red")
        return value


class Mitigation(Step):
    """A step that changes something: previewed, permitted, maybe approved, confirmed."""

    preview: str | None = None
    allowed: Allowed = Allowed(roles=["commander"])
    two_person: bool = False
    timeout: Duration = timedelta(seconds=60)
    suggested_by: list[SuggestedBy] = []


class Runbook(_Strict):
    id: str
    title: str
    description: str = ""
    match: Match = Match()
    diagnostics: list[Step] = []
    mitigations: list[Mitigation] = []

    _source: str = PrivateAttr(default="")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID.fullmatch(value):
            raise ValueError("ids are lowercase letters, digits, - and _ (at most 63)")
        return value

    @property
    def source(self) -> str:
        return self._source

    def diagnostic(self, step_id: str) -> Step:
        for step in self.diagnostics:
            if step.id == step_id:
                return step
        raise StepNotFound(self.id, step_id, "diagnostic", [s.id for s in self.diagnostics])

    def mitigation(self, step_id: str) -> Mitigation:
        for step in self.mitigations:
            if step.id == step_id:
                return step
        raise StepNotFound(self.id, step_id, "mitigation", [s.id for s in self.mitigations])


# -- loading ------------------------------------------------------------------

Lines = dict[tuple[str, ...], int]


def builtin_dir() -> Path:
    """Where the shipped runbooks are (package data, also inside an installed wheel)."""
    return Path(__file__).resolve().parent / "builtin"


def load_runbooks(
    paths: Iterable[str | Path],
    *,
    kinds: Mapping[str, StepKind] | None = None,
    targets: TargetsConfig | None = None,
) -> list[Runbook]:
    """Every runbook in ``paths`` (files, or directories of ``*.yaml``/``*.yml``).

    Raises :class:`~bot.errors.ConfigError` listing every problem as ``file:line: key:
    message``. With ``targets``, a step whose target is not configured is a problem too.
    """
    registry = KINDS if kinds is None else kinds
    problems: list[ConfigProblem] = []
    runbooks: list[Runbook] = []
    seen: dict[str, str] = {}
    for file in _files(paths, problems):
        for runbook, line in _load_file(file, registry, targets, problems):
            where = f"{file}:{line}"
            if runbook.id in seen:
                problems.append(
                    ConfigProblem(
                        source=str(file),
                        key="id",
                        message=f"runbook {runbook.id!r} is also defined at {seen[runbook.id]}",
                        line=line,
                    )
                )
                continue
            seen[runbook.id] = where
            runbooks.append(runbook)
    if problems:
        raise ConfigError(problems)
    return runbooks


def _files(paths: Iterable[str | Path], problems: list[ConfigProblem]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.is_file():
            out.append(path)
        else:
            problems.append(ConfigProblem(source=str(path), key="(file)", message="no such file"))
    return out


def _load_file(
    file: Path,
    kinds: Mapping[str, StepKind],
    targets: TargetsConfig | None,
    problems: list[ConfigProblem],
) -> list[tuple[Runbook, int]]:
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as error:
        problems.append(ConfigProblem(source=source, key="(file)", message=f"cannot read: {error}"))
        return []
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problems.append(
            ConfigProblem(
                source=source,
                key="(syntax)",
                message=f"not valid YAML: {getattr(error, 'problem', None) or error}",
                line=mark.line + 1 if mark is not None else None,
            )
        )
        return []
    lines: Lines = {}
    _map_lines(node, (), lines, source, problems)
    if isinstance(data, dict):
        documents: list[tuple[tuple[str, ...], Any]] = [((), data)]
    elif isinstance(data, list):
        documents = [((str(i),), item) for i, item in enumerate(data)]
    else:
        problems.append(
            ConfigProblem(
                source=source, key="(top level)", message="must be a runbook or a list of them"
            )
        )
        return []
    out = []
    for prefix, item in documents:
        before = len(problems)
        try:
            runbook = Runbook.model_validate(item)
        except ValidationError as error:
            problems += _explain(error, prefix, lines, source)
            continue
        _check(runbook, prefix, lines, source, kinds, targets, problems)
        if len(problems) == before:
            runbook._source = source
            out.append((runbook, lines.get(prefix, 1) if prefix else 1))
    return out


def _map_lines(
    node: yaml.Node | None,
    path: tuple[str, ...],
    out: Lines,
    source: str,
    problems: list[ConfigProblem],
) -> None:
    if node is None:
        return
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    ConfigProblem(
                        source=source,
                        key=".".join((*path, key)),
                        message="duplicate key",
                        line=line,
                    )
                )
            seen.add(key)
            out[(*path, key)] = line
            _map_lines(value_node, (*path, key), out, source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _map_lines(item, (*path, str(index)), out, source, problems)


def _line(lines: Lines, path: Sequence[str]) -> int | None:
    for depth in range(len(path), -1, -1):
        line = lines.get(tuple(path[:depth]))
        if line is not None:
            return line
    return None


def _explain(
    error: ValidationError, prefix: tuple[str, ...], lines: Lines, source: str
) -> list[ConfigProblem]:
    out = []
    for item in error.errors():
        loc = tuple(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(
            ConfigProblem(
                source=source,
                key=".".join((*prefix, *loc)) or "(runbook)",
                message=message,
                line=_line(lines, (*prefix, *loc)),
            )
        )
    return out


def _check(
    runbook: Runbook,
    prefix: tuple[str, ...],
    lines: Lines,
    source: str,
    kinds: Mapping[str, StepKind],
    targets: TargetsConfig | None,
    problems: list[ConfigProblem],
) -> None:
    """What the models cannot see alone: kinds, their keys, previews, targets, unique ids."""

    def problem(path: Sequence[str], key: str, message: str) -> None:
        problems.append(
            ConfigProblem(
                source=source,
                key=f"{runbook.id}.{key}",
                message=message,
                line=_line(lines, (*prefix, *path)),
            )
        )

    ids: set[str] = set()
    steps: list[tuple[str, int, Step]] = [
        ("diagnostics", i, s) for i, s in enumerate(runbook.diagnostics)
    ]
    steps += [("mitigations", i, s) for i, s in enumerate(runbook.mitigations)]
    for section, index, step in steps:
        at = (section, str(index))
        name = f"{section}.{step.id}"
        if step.id in ids:
            problem((*at, "id"), f"{name}.id", "another step of this runbook has this id")
        ids.add(step.id)
        kind = kinds.get(step.kind)
        if kind is None:
            problem(
                (*at, "kind"),
                f"{name}.kind",
                f"unknown kind {step.kind!r} (known: {', '.join(sorted(kinds))})",
            )
            continue
        is_mitigation = isinstance(step, Mitigation)
        if kind.mitigation_only and not is_mitigation:
            problem(
                (*at, "kind"),
                f"{name}.kind",
                f"a {kind.name} step changes things: declare it under mitigations",
            )
        extras = dict(step.model_extra or {})
        for key in _MITIGATION_KEYS:
            if key in extras and not is_mitigation:
                problem((*at, key), f"{name}.{key}", "only mitigations have this key")
                extras.pop(key)
        try:
            spec = kind.spec_model.model_validate(extras)
        except ValidationError as error:
            for item in error.errors():
                loc = tuple(str(p) for p in item["loc"])
                message = item["msg"].removeprefix("Value error, ")
                if item["type"] == "extra_forbidden":
                    message = f"unknown key for a {kind.name} step"
                problem((*at, *loc), ".".join((name, *loc)), message)
            continue
        step._spec = spec
        for key, message in kind.check(spec, step.params, mitigation=is_mitigation):
            problem((*at, key), f"{name}.{key}", message)
        if targets is not None and targets.get(kind.target_type, step.target) is None:
            known = ", ".join(targets.section(kind.target_type)) or "none"
            problem(
                (*at, "target"),
                f"{name}.target",
                f"no {kind.target_type} target {step.target!r} in runbooks.targets."
                f"{kind.target_type} (configured: {known})",
            )
    for index, mitigation in enumerate(runbook.mitigations):
        for link, suggested in enumerate(mitigation.suggested_by):
            try:
                runbook.diagnostic(suggested.diagnostic)
            except StepNotFound as error:
                problem(
                    ("mitigations", str(index), "suggested_by", str(link), "diagnostic"),
                    f"mitigations.{mitigation.id}.suggested_by.{link}.diagnostic",
                    str(error),
                )
        if mitigation.preview is None:
            continue
        where = ("mitigations", str(index), "preview")
        name = f"mitigations.{mitigation.id}.preview"
        try:
            preview = runbook.diagnostic(mitigation.preview)
        except StepNotFound as error:
            problem(where, name, str(error))
            continue
        for param_name, param in preview.params.items():
            mine = mitigation.params.get(param_name)
            if mine is None and param.required:
                problem(where, name, f"the preview needs parameter {param_name!r}: declare it here")
            elif mine is not None and mine.type != param.type:
                problem(
                    at,
                    name,
                    f"parameter {param_name!r} is a {mine.type} here but a "
                    f"{param.type} in the preview",
                )
