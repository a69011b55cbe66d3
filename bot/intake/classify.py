"""Severity classification: rules over an alert's labels, annotations and values.

A rule matches when every one of its conditions holds; the alert gets the most
severe level among the rules that match (the first such rule names the reason),
else the level its sender's severity hint maps to, else the scheme's default.
The reason is kept with the incident: ``rule db-pool-critical:
labels.alertname=CriticalConnectionPoolUtilization``.

Condition paths: ``labels.<name>``, ``annotations.<name>``, ``values.<name>``
(``<name>`` may be a glob such as ``*pool*``: any matching key will do),
``summary``, ``description``, ``source``, ``name``. Operators: ``equals``,
``regex`` (searched), ``in``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists``.
Numeric operators read Grafana's ``values`` directly and the first number in a
label or annotation (``"97.5%"`` → 97.5).

The shipped rules come from the runbooks: the alerts they name and the
thresholds their symptoms give.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.errors import InvalidSeverity
from bot.incidents.severity import SeverityLevel, SeverityScheme
from bot.intake.alerts.model import NormalizedAlert

Op = Literal["equals", "regex", "in", "gt", "gte", "lt", "lte", "exists"]
OPS: tuple[Op, ...] = ("equals", "regex", "in", "gt", "gte", "lt", "lte", "exists")
_NUMERIC = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SECTIONS = ("labels", "annotations", "values")
_FIELDS = ("summary", "description", "source", "name")


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    op: Op
    value: str | float | tuple[str, ...] | bool

    def __post_init__(self) -> None:
        section, _, key = self.path.partition(".")
        if not ((section in _SECTIONS and key) or (self.path in _FIELDS)):
            raise ValueError(
                f"unknown field {self.path!r}: use labels.<name>, annotations.<name>, "
                f"values.<name> or one of {', '.join(_FIELDS)}"
            )
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r}: use one of {', '.join(OPS)}")
        if self.op == "regex":
            try:
                re.compile(str(self.value))
            except re.error as error:
                raise ValueError(f"bad regex {self.value!r}: {error}") from None
        if self.op in _NUMERIC and not isinstance(self.value, int | float):
            raise ValueError(f"{self.op} needs a number, not {self.value!r}")

    def check(self, alert: NormalizedAlert) -> str | None:
        """The evidence (``labels.x=y``) when the condition holds, else None."""
        for path, actual in _lookup(alert, self.path):
            if self._holds(actual):
                return self._describe(path, actual)
        return None

    def _holds(self, actual: str | float) -> bool:
        if self.op == "exists":
            return bool(self.value)
        if self.op in _NUMERIC:
            number = _as_number(actual)
            if number is None:
                return False
            limit = float(self.value)  # type: ignore[arg-type]
            return {
                "gt": number > limit,
                "gte": number >= limit,
                "lt": number < limit,
                "lte": number <= limit,
            }[self.op]
        text = _as_text(actual)
        if self.op == "equals":
            return text == _as_text(self.value)  # type: ignore[arg-type]
        if self.op == "in":
            return text in self.value  # type: ignore[operator]
        return re.search(str(self.value), text) is not None

    def _describe(self, path: str, actual: str | float) -> str:
        if self.op in _NUMERIC:
            return f"{path}={_as_text(actual)} {_NUMERIC[self.op]} {_as_text(self.value)}"  # type: ignore[arg-type]
        if self.op == "regex":
            return f"{path}={_as_text(actual)} matches /{self.value}/"
        return f"{path}={_as_text(actual)}"


@dataclass(frozen=True, slots=True)
class SeverityRule:
    name: str
    severity: str
    conditions: tuple[Condition, ...]

    def check(self, alert: NormalizedAlert) -> str | None:
        """The reason text when every condition holds, else None."""
        evidence = []
        for condition in self.conditions:
            found = condition.check(alert)
            if found is None:
                return None
            evidence.append(found)
        return f"rule {self.name}: " + ", ".join(evidence)


@dataclass(frozen=True, slots=True)
class Classification:
    level: SeverityLevel
    reason: str
    rule: str | None

    @property
    def severity(self) -> str:
        return self.level.name


class Classifier:
    def __init__(self, scheme: SeverityScheme, rules: Sequence[SeverityRule]) -> None:
        for rule in rules:
            try:
                scheme.get(rule.severity)
            except InvalidSeverity as error:
                raise ValueError(f"rule {rule.name}: {error}") from None
        self.scheme = scheme
        self.rules = list(rules)
        # What a verdict depends on: the fields the rules read (a whole section when a rule
        # reads it by pattern), the sender's severity hint and the source (in the reason).
        paths = {c.path for rule in self.rules for c in rule.conditions}
        self._whole = tuple(sorted({p.partition(".")[0] for p in paths if _pattern(p)}))
        self._paths = tuple(sorted(p for p in paths if p.partition(".")[0] not in self._whole))
        self._memo: dict[tuple[object, ...], Classification] = {}

    def classify(self, alert: NormalizedAlert) -> Classification:
        """The alert's verdict; remembered by what it depends on (a storm's alerts of one
        group mostly differ only in labels no rule reads)."""
        key = (
            alert.source,
            alert.severity_hint,
            *(_field(alert, path) for path in self._paths),
            *(tuple(sorted(getattr(alert, section).items())) for section in self._whole),
        )
        found = self._memo.get(key)
        if found is None:
            found = self._classify(alert)
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _classify(self, alert: NormalizedAlert) -> Classification:
        best: tuple[SeverityLevel, str, str] | None = None
        for rule in self.rules:
            reason = rule.check(alert)
            if reason is None:
                continue
            level = self.scheme.get(rule.severity)
            if best is None or self.scheme.rank(level.name) < self.scheme.rank(best[0].name):
                best = (level, reason, rule.name)
        if best is not None:
            return Classification(*best)
        hinted = self._from_hint(alert.severity_hint)
        if hinted is not None:
            return Classification(
                hinted, f"{alert.source} severity {alert.severity_hint!r} (no rule matched)", None
            )
        level = self.scheme.get(self.scheme.default)
        return Classification(level, f"no rule matched: default {level.name}", None)

    def _from_hint(self, hint: str | None) -> SeverityLevel | None:
        if not hint:
            return None
        text = hint.strip().lower()
        try:
            return self.scheme.get(text)  # "P1", "critical" (a level's label)
        except InvalidSeverity:
            pass
        label = HINTS.get(text)
        if label is None:
            return None
        return self._by_rank(("critical", "high", "medium", "low").index(label))

    def _by_rank(self, rank: int) -> SeverityLevel:
        return self.scheme.levels[min(rank, len(self.scheme.levels) - 1)]


#: Sender severity words → the runbooks' classification (Critical / High / Medium / Low).
HINTS: dict[str, str] = {
    "critical": "critical", "crit": "critical", "page": "critical", "fatal": "critical",
    "emergency": "critical", "disaster": "critical", "sev1": "critical",
    "high": "high", "error": "high", "major": "high", "severe": "high", "sev2": "high",
    "warning": "medium", "warn": "medium", "medium": "medium", "minor": "medium",
    "average": "medium", "sev3": "medium",
    "info": "low", "informational": "low", "low": "low", "none": "low", "ok": "low",
    "sev4": "low",
}  # fmt: skip


def _equals(path: str, value: str) -> Condition:
    return Condition(path, "equals", value)


def _above(path: str, value: float) -> Condition:
    return Condition(path, "gt", value)


#: The runbooks' alerts and thresholds. Severities are the levels' labels, so the same rules
#: serve the P1–P4 and the P0–P3 schemes.
DEFAULT_RULES: tuple[SeverityRule, ...] = (
    SeverityRule(
        "db-pool-critical",
        "critical",
        (_equals("labels.alertname", "CriticalConnectionPoolUtilization"),),
    ),
    SeverityRule("connection-pool-above-95", "critical", (_above("values.*pool*", 95),)),
    SeverityRule("error-rate-above-5pct", "critical", (_above("values.*error_rate*", 5),)),
    SeverityRule("p95-latency-above-5s", "critical", (_above("values.*p95*_seconds", 5),)),
    SeverityRule("p95-latency-above-5000ms", "critical", (_above("values.*p95*_ms", 5000),)),
    SeverityRule("high-query-latency", "high", (_equals("labels.alertname", "HighQueryLatency"),)),
    SeverityRule("redis-down", "high", (_equals("labels.alertname", "RedisInstanceDown"),)),
    SeverityRule("replication-lag", "high", (_equals("labels.alertname", "HighReplicationLag"),)),
    SeverityRule("replication-lag-above-5s", "high", (_above("values.*replication_lag*", 5),)),
)


MEMO_SIZE = 4096


def _pattern(path: str) -> bool:
    section, _, key = path.partition(".")
    return section in _SECTIONS and any(ch in key for ch in "*?[")


def _field(alert: NormalizedAlert, path: str) -> object:
    """The value a condition on ``path`` (no pattern) reads, or None."""
    section, _, key = path.partition(".")
    if section in _SECTIONS and key:
        mapping: dict[str, str] | dict[str, float] = getattr(alert, section)
        return mapping.get(key)
    return getattr(alert, path, None)


def _lookup(alert: NormalizedAlert, path: str) -> Iterator[tuple[str, str | float]]:
    section, _, key = path.partition(".")
    if section in _SECTIONS and key:
        mapping: dict[str, str] | dict[str, float] = getattr(alert, section)
        if any(ch in key for ch in "*?["):
            for name in sorted(mapping):
                if fnmatch.fnmatchcase(name.lower(), key.lower()):
                    yield f"{section}.{name}", mapping[name]
        elif key in mapping:
            yield path, mapping[key]
        return
    value = getattr(alert, path, None)
    if isinstance(value, str) and value:
        yield path, value


def _as_number(value: str | float) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _NUMBER.search(str(value))
    return float(match.group()) if match else None


def _as_text(value: str | float | bool) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
