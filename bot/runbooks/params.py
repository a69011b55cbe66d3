"""Typed step parameters: what a runbook declares, and the checking of what chat sends.

A value from chat is always a string (``minutes=10``); a value from a runbook default or a
stored request may already be typed. Either way :meth:`Param.coerce` returns the typed
value or raises ``ValueError`` with a message that says what to give instead. Nothing
here formats a value into SQL, a command or a URL: kinds bind the typed values.

Types:

``int``, ``float``
    decimal numbers, within ``min``/``max``.
``string``
    printable text up to ``max_length``, matching ``pattern`` (a full match) when given.
``identifier``
    a table or schema-qualified name (``songs``, ``public.songs``): ASCII letters, digits
    and ``_``, checked against a strict pattern *and* quoted as an identifier by the kind.
``duration``
    ``500ms``, ``90s``, ``15m``, ``1h30m``, ``2d`` or a number of seconds; ``min``/``max``
    likewise.

``enum`` limits any type to a list of values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

ParamType = Literal["int", "float", "string", "identifier", "duration"]
ParamValue = int | float | str | timedelta

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(?:\.[A-Za-z_][A-Za-z0-9_]{0,62})?")
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_INT = re.compile(r"[+-]?\d{1,18}", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:\d{1,18}(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_DURATION = re.compile(
    r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,9})s)?(?:(\d{1,9})ms)?", re.ASCII
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def parse_duration(value: object) -> timedelta:
    """``"500ms"``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"``, seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if _FLOAT.fullmatch(text):
            return parse_duration(float(text))
        match = _DURATION.fullmatch(text)
        if text and match and any(match.groups()):
            days, hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
            return timedelta(
                days=days, hours=hours, minutes=minutes, seconds=seconds, milliseconds=millis
            )
    raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 15m, 1h30m or 2d)")


def format_duration(value: timedelta) -> str:
    total = round(value.total_seconds())
    if total == 0:
        return f"{value.total_seconds():g}s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out += f"{amount}{unit}"
    return out


#: A duration field in YAML (``timeout: 30s``).
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Param(BaseModel):
    """One declared parameter of a step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ParamType
    description: str = ""
    default: Any = None
    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    pattern: str | None = None
    max_length: int = Field(default=200, ge=1, le=2000)

    @model_validator(mode="before")
    @classmethod
    def _durations_as_seconds(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "duration":
            data = dict(data)
            for bound in ("min", "max"):
                if data.get(bound) is not None:
                    data[bound] = parse_duration(data[bound]).total_seconds()
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is greater than max ({self.max:g})")
        if self.pattern is not None:
            if self.type != "string":
                raise ValueError("pattern applies to string parameters only")
            try:
                re.compile(self.pattern)
            except re.error as error:
                raise ValueError(f"pattern is not a regular expression: {error}") from None
        if (self.min is not None or self.max is not None) and self.type in ("string", "identifier"):
            raise ValueError("min and max apply to int, float and duration parameters")
        if self.enum is not None:
            if not self.enum:
                raise ValueError("enum must list at least one value")
            object.__setattr__(self, "enum", [self._check(v, "enum value") for v in self.enum])
        if self.default is not None:
            object.__setattr__(self, "default", self._check(self.default, "default"))
        return self

    @property
    def required(self) -> bool:
        return self.default is None

    def coerce(self, value: object) -> ParamValue:
        """The typed value of ``value``, or ``ValueError`` saying what is expected."""
        return self._check(value, "value")

    def describe(self) -> str:
        """``int 0–1440, default 10`` — for usage messages."""
        text: str = self.type
        if self.enum is not None:
            text += " one of " + ", ".join(self._display(v) for v in self.enum)
        elif self.min is not None or self.max is not None:
            low = "" if self.min is None else self._bound(self.min)
            high = "" if self.max is None else self._bound(self.max)
            text += f" {low}–{high}"
        if self.pattern is not None:
            text += f" matching {self.pattern}"
        if self.default is not None:
            text += f", default {self._display(self.default)}"
        return text

    def _display(self, value: ParamValue) -> str:
        return format_duration(value) if isinstance(value, timedelta) else str(value)

    @staticmethod
    def jsonable(value: ParamValue) -> int | float | str:
        """How a typed value is stored and shown (durations as seconds)."""
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value

    def _bound(self, bound: float) -> str:
        if self.type == "duration":
            return format_duration(timedelta(seconds=bound))
        return str(int(bound)) if bound.is_integer() else f"{bound:g}"

    def _check(self, value: object, what: str) -> ParamValue:
        typed = self._typed(value)
        if self.enum is not None and what != "enum value" and typed not in self.enum:
            allowed = ", ".join(self._display(v) for v in self.enum)
            raise ValueError(f"{_show(value)} is not one of {allowed}")
        number = typed.total_seconds() if isinstance(typed, timedelta) else typed
        if isinstance(number, int | float):
            if self.min is not None and number < self.min:
                raise ValueError(f"{_show(value)} is below the minimum {self._bound(self.min)}")
            if self.max is not None and number > self.max:
                raise ValueError(f"{_show(value)} is above the maximum {self._bound(self.max)}")
        return typed

    def _typed(self, value: object) -> ParamValue:
        if isinstance(value, bool):
            raise ValueError(f"{_show(value)} is not a {self.type}")
        if self.type == "int":
            return _int(value)
        if self.type == "float":
            return _float(value)
        if self.type == "duration":
            return parse_duration(value)
        if not isinstance(value, str):
            raise ValueError(f"{_show(value)} is not text")
        if self.type == "identifier":
            if not IDENTIFIER.fullmatch(value):
                raise ValueError(
                    f"{_show(value)} is not a table name (ASCII letters, digits and _, "
                    "optionally schema.table)"
                )
            return value
        if len(value) > self.max_length:
            raise ValueError(f"text longer than {self.max_length} characters")
        if _CONTROL.search(value):
            raise ValueError("text with control characters")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ValueError(f"{_show(value)} does not match {self.pattern}")
        return value


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"{_show(value)} is not a whole number")


def _float(value: object) -> float:
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        raise ValueError(f"{_show(value)} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{_show(value)} is not a finite number")
    return number


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def coerce_all(
    declared: Mapping[str, Param], given: Mapping[str, object], *, strict: bool = True
) -> dict[str, ParamValue]:
    """Every declared parameter's typed value (given, else default).

    Raises ``ValueError`` listing each problem: a missing required value, a bad value, and
    (when ``strict``) a given name the step does not declare.
    """
    problems: list[str] = []
    out: dict[str, ParamValue] = {}
    for name, param in declared.items():
        if name in given and given[name] is not None and given[name] != "":
            try:
                out[name] = param.coerce(given[name])
            except ValueError as error:
                problems.append(f"{name}: {error} (expected {param.describe()})")
        elif param.default is not None:
            out[name] = param.default
        else:
            problems.append(f"{name} is required ({param.describe()})")
    if strict:
        for name in given:
            if name not in declared:
                takes = ", ".join(declared) or "no parameters"
                problems.append(f"unknown parameter {_show(name)} (this step takes {takes})")
    if problems:
        raise ValueError("; ".join(problems))
    return out
