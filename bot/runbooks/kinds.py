"""Step kinds: the typed interface a kind implements and the registry it joins.

A kind (``postgres``, ``redis``, ``http``, ``webhook``, or a user's own) declares

- ``name``: what a step's ``kind:`` says;
- ``target_type``: which section of ``runbooks.targets`` its targets come from;
- ``spec_model``: a pydantic model of the step keys it adds (``sql:``, ``command:``…);
- ``mitigation_only``: whether it may only act (a webhook), never diagnose;
- ``check(spec, params, mitigation=…)``: what pydantic cannot see (placeholders that name
  undeclared parameters, commands outside an allow-list), as ``Problem`` (key, message);
- ``run(call) -> Outcome``: do it. Expected failures — the target is down, a timeout, a
  permission error — raise :class:`StepFailed` with a readable message; the engine turns
  them into a result graded ``error``.

Built-in kinds register with :func:`register_kind` exactly as a user's kind does.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from pydantic import BaseModel

from bot.runbooks.grading import Verdict
from bot.runbooks.params import Param, ParamValue
from bot.runbooks.targets import Target, TargetType


class StepInfo(Protocol):
    """What a kind may read of the step it runs (a :class:`bot.runbooks.model.Step` is one)."""

    @property
    def id(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Param]: ...


#: How long a text cell may be in stored and shown output.
CELL_MAX = 1000


class StepFailed(Exception):
    """The step could not do its work; the message is shown to the responder."""


class Problem(NamedTuple):
    """A validation problem of one step: the step key it concerns and what is wrong."""

    key: str
    message: str


@dataclass(slots=True)
class Outcome:
    """What a kind returns: a table, named values for thresholds, a one-line summary."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    verdict: Verdict | None = None
    total_rows: int | None = None


@dataclass(frozen=True, slots=True)
class StepCall:
    """One execution of a step, with everything resolved and every parameter checked."""

    runbook: str
    step: StepInfo
    spec: Any
    target_name: str
    target: Target
    params: Mapping[str, ParamValue]
    mitigation: bool
    timeout: float
    context: Mapping[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    max_rows: int = 200


class StepKind(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def target_type(self) -> TargetType: ...

    @property
    def spec_model(self) -> type[BaseModel]: ...

    @property
    def mitigation_only(self) -> bool: ...

    def check(
        self, spec: Any, params: Mapping[str, Param], *, mitigation: bool
    ) -> list[Problem]: ...

    async def run(self, call: StepCall) -> Outcome: ...


KINDS: dict[str, StepKind] = {}

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}", re.ASCII)


def register_kind(kind: StepKind, *, replace: bool = False) -> None:
    """Make ``kind`` available to runbooks as ``kind: <kind.name>``.

    Registering a name that is taken is an error unless ``replace`` is true.
    """
    if not _NAME.fullmatch(kind.name):
        raise ValueError(f"kind name {kind.name!r} must be lower case letters, digits, _ or -")
    if kind.target_type not in ("postgres", "redis", "http", "webhooks"):
        raise ValueError(f"kind {kind.name!r}: unknown target type {kind.target_type!r}")
    if kind.name in KINDS and not replace and KINDS[kind.name] is not kind:
        raise ValueError(f"a step kind {kind.name!r} is already registered (pass replace=True)")
    KINDS[kind.name] = kind


def get_kind(name: str, kinds: Mapping[str, StepKind] | None = None) -> StepKind:
    """The kind called ``name``; ``KeyError`` lists the known ones."""
    registry = KINDS if kinds is None else kinds
    try:
        return registry[name]
    except KeyError:
        raise KeyError(f"unknown kind {name!r} (known: {', '.join(sorted(registry))})") from None


def jsonable(value: Any) -> Any:
    """A JSON-safe form of a value from a driver: times as ISO text, intervals as seconds."""
    if value is None or isinstance(value, bool | int | str):
        return value[:CELL_MAX] if isinstance(value, str) else value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")[:CELL_MAX]
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw[:CELL_MAX]).decode("ascii")
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, UUID | ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return str(value)[:CELL_MAX]  # inet, cidr, ranges…: their text form
