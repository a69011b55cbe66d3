"""Thresholds grade a step's result Green / Yellow / Red, as the runbooks' dashboard table does.

A threshold names a *metric* — a value the kind computed (``latency_ms``, ``hit_rate_pct``,
``status``), a column of the result rows (aggregated: ``first``, ``max``, ``min``, ``sum``,
``avg``), or ``rows`` (how many rows came back) — and up to three conditions::

    - metric: hit_rate_pct        # Cache Hit Rate | > 70% | 50-70% | < 50%
      green: "> 70"
      red: "< 50"

The first of red, yellow, green whose condition holds gives the grade. A value that meets
none is yellow when a green band was given (it missed green), else green (it stayed out of
the red and yellow bands). A missing value is not graded; the reason says so. A step's grade
is the worst of its thresholds and of the kind's own verdict (an HTTP status that was not
expected is red).

Conditions: ``< 5``, ``<= 5``, ``> 5``, ``>= 5``, ``== 0``, ``!= 0``, ``50..80`` (inclusive),
and ``== ok`` / ``!= ok`` for text. Numbers carry no unit: the metric's name says it.
"""

from __future__ import annotations

import enum
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class Grade(enum.StrEnum):
    INFO = "info"  # nothing to grade: no thresholds, or no value
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    ERROR = "error"  # the step could not run: target down, timeout, permission

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Grade.INFO: 0, Grade.GREEN: 1, Grade.YELLOW: 2, Grade.RED: 3, Grade.ERROR: 4}


def worst(grades: Sequence[Grade]) -> Grade:
    return max(grades, key=lambda g: g.rank, default=Grade.INFO)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_COMPARE = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*")
_RANGE = re.compile(rf"\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*")


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    test: Callable[[float | str], bool]

    @classmethod
    def parse(cls, text: str) -> Condition:
        text = str(text)
        ranged = _RANGE.fullmatch(text)
        if ranged:
            low, high = float(ranged.group(1)), float(ranged.group(2))
            if low > high:
                raise ValueError(f"{text!r}: the range is empty ({low:g} > {high:g})")
            return cls(text.strip(), lambda v: isinstance(v, float) and low <= v <= high)
        compared = _COMPARE.fullmatch(text)
        if not compared:
            raise ValueError(
                f"{text!r} is not a condition: write e.g. '< 500', '>= 70', '== 0', '50..80'"
            )
        op, operand = compared.groups()
        if re.fullmatch(_NUMBER, operand):
            bound = float(operand)
            compare = _OPS[op]
            return cls(text.strip(), lambda v: isinstance(v, float) and compare(v, bound))
        if op not in ("==", "!="):
            raise ValueError(
                f"{text!r}: {operand!r} is not a number (numbers carry no unit: the metric's "
                "name says it, e.g. latency_ms)"
            )
        word = operand.strip("'\"")
        if op == "==":
            return cls(text.strip(), lambda v: str(v) == word)
        return cls(text.strip(), lambda v: str(v) != word)


Aggregate = Literal["first", "max", "min", "sum", "avg"]


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    label: str = ""
    aggregate: Aggregate = "first"
    green: str | None = None
    yellow: str | None = None
    red: str | None = None

    @field_validator("green", "yellow", "red", mode="before")
    @classmethod
    def _condition(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"write a comparison such as '< {value}' or '>= {value}'")
        Condition.parse(str(value))
        return str(value)

    @model_validator(mode="after")
    def _some_band(self) -> Threshold:
        if self.green is None and self.yellow is None and self.red is None:
            raise ValueError("give at least one of green, yellow, red")
        return self

    @property
    def name(self) -> str:
        return self.label or self.metric

    def bands(self) -> list[tuple[Grade, Condition]]:
        out = []
        for grade, text in ((Grade.RED, self.red), (Grade.YELLOW, self.yellow)):
            if text is not None:
                out.append((grade, Condition.parse(text)))
        if self.green is not None:
            out.append((Grade.GREEN, Condition.parse(self.green)))
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    grade: Grade
    reason: str


def measure(
    threshold: Threshold,
    values: Mapping[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> float | str | None:
    """The value a threshold looks at, or None when the result does not have it."""
    if threshold.metric in values:
        return _scalar(values[threshold.metric])
    if threshold.metric == "rows":
        return float(len(rows))
    if threshold.metric not in columns:
        return None
    index = list(columns).index(threshold.metric)
    cells = [_scalar(row[index]) for row in rows if index < len(row)]
    numbers = [c for c in cells if isinstance(c, float)]
    if threshold.aggregate == "first":
        return cells[0] if cells else None
    if not numbers:
        return None
    if threshold.aggregate == "max":
        return max(numbers)
    if threshold.aggregate == "min":
        return min(numbers)
    if threshold.aggregate == "sum":
        return math.fsum(numbers)
    return math.fsum(numbers) / len(numbers)


def judge(threshold: Threshold, value: float | str | None) -> Verdict:
    if value is None:
        return Verdict(Grade.INFO, f"{threshold.name}: no value")
    shown = _show(value)
    for grade, condition in threshold.bands():
        if condition.test(value):
            return Verdict(grade, f"{threshold.name} = {shown} ({grade.value}: {condition.text})")
    if threshold.green is not None:
        return Verdict(
            Grade.YELLOW, f"{threshold.name} = {shown} (yellow: not {threshold.green.strip()})"
        )
    return Verdict(Grade.GREEN, f"{threshold.name} = {shown} (green)")


def grade(
    thresholds: Sequence[Threshold],
    values: Mapping[str, Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    verdict: Verdict | None = None,
) -> Verdict:
    """The worst of the kind's own ``verdict`` and every threshold, with the reasons."""
    verdicts = [verdict] if verdict is not None else []
    verdicts += [judge(t, measure(t, values, columns, rows)) for t in thresholds]
    if not verdicts:
        return Verdict(Grade.INFO, "")
    overall = worst([v.grade for v in verdicts])
    ordered = sorted(verdicts, key=lambda v: -v.grade.rank)
    return Verdict(overall, "; ".join(v.reason for v in ordered if v.reason))


def _scalar(value: Any) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    text = str(value).strip()
    if re.fullmatch(_NUMBER, text):
        return float(text)
    return text


def _show(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if len(value) <= 40 else value[:39] + "…"
