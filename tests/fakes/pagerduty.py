"""A strict PagerDuty Events API v2 on loopback, checked against PagerDuty's own description.

``tests/data/pagerduty/events_v2_openapiv3.json`` is PagerDuty's OpenAPI 3 file for the Events
API v2. The stand-in reads the request body schema of ``POST /v2/enqueue`` from it (its
``$ref``s resolved) and checks every request against it: required fields, types, enum values,
the nested ``payload``, ``links`` and ``images``; plus the two rules the file states in prose
(``dedup_key`` "Required unless the event_type is trigger") and PagerDuty's documentation
(a ``trigger`` carries a ``payload``). A routing key it was not given is refused as PagerDuty
refuses one.

Answers, in the shapes the file gives: 202 ``{status, message, dedup_key}``; 400 with the error
shape ``{status, message, errors}``; and, at ``fault_rate``, 429 (with ``Retry-After``) or 500
*before* the event is applied, as a throttled or failing PagerDuty does. Every accepted event
is kept in ``events`` in arrival order.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.fakes.openapi import TYPES
from tests.fakes.standin import Reply, Standin

SPEC_FILE = Path(__file__).resolve().parents[1] / "data" / "pagerduty" / "events_v2_openapiv3.json"


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return data


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        node: Any = spec()
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return _resolve(node)
    return schema


def request_schema() -> Mapping[str, Any]:
    body = spec()["paths"]["/enqueue"]["post"]["requestBody"]
    return _resolve(body["content"]["application/json"]["schema"])


def example_event() -> dict[str, Any]:
    body = spec()["paths"]["/enqueue"]["post"]["requestBody"]
    value = body["content"]["application/json"]["examples"]["event"]["value"]
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def response_schema(code: str) -> Mapping[str, Any]:
    name = {"202": "Success", "5XX": "Error"}[code]
    response = spec()["components"]["responses"][name]
    return _resolve(response["content"]["application/json"]["schema"])


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """What is wrong with ``value`` under ``schema``: type, enum, required, nested, formats."""
    schema = _resolve(schema)
    where = path or "event"
    expected = schema.get("type")
    if isinstance(expected, str):
        types = TYPES.get(expected, (object,))
        wrong_bool = isinstance(value, bool) and expected in ("integer", "number")
        if not isinstance(value, types) or wrong_bool:
            return [f"'{where}' must be of type {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        return [f"'{where}' is invalid (must be one of {allowed})"]
    if schema.get("format") == "date-time" and isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return [f"'{where}' is not a date-time"]
    problems: list[str] = []
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"'{path + '.' if path else ''}{key}' is missing or blank")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += schema_problems(value[key], sub, f"{path + '.' if path else ''}{key}")
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        for index, item in enumerate(value):
            problems += schema_problems(item, items, f"{where}[{index}]")
    return problems


def event_problems(event: Any, routing_keys: set[str] | None = None) -> list[str]:
    """Every problem PagerDuty would name in its 400 for this event body."""
    if not isinstance(event, dict):
        return ["Event object format is unrecognized"]
    problems = schema_problems(event, request_schema())
    action = event.get("event_action")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        problems.append("'dedup_key' is missing or blank")
    if action == "trigger" and "payload" not in event:
        problems.append("'payload' is missing or blank")
    key = event.get("routing_key")
    if routing_keys is not None and isinstance(key, str) and key not in routing_keys:
        problems.append("'routing_key' is invalid")
    return problems


@dataclass
class FakePagerDuty(Standin):
    """The stand-in; ``with FakePagerDuty(keys) as pd:`` serves it on ``pd.url``."""

    METHODS = ("POST",)

    routing_keys: set[str]
    fault_rate: float = 0.0
    seed: int = 0
    retry_after: int = 1
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    faults: dict[int, int] = field(default_factory=dict)  # status → how many injected
    requests: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def answer(self, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, JSON body) for one ``POST /v2/enqueue``."""
        with self._lock:
            self.requests += 1
            draw = self._random.random()
            if draw < self.fault_rate:
                code = 429 if draw < self.fault_rate / 2 else 500
                self.faults[code] = self.faults.get(code, 0) + 1
                if code == 429:
                    return (
                        429,
                        {"Retry-After": str(self.retry_after)},
                        {"status": "throttle event", "message": "Requests for this service "
                         "are arriving too quickly. Please retry later."},
                    )  # fmt: skip
                return 500, {}, {"status": "internal error", "message": "Internal error"}
            try:
                event = json.loads(body)
            except ValueError:
                return 400, {}, _error(["JSON parse error"], "Unrecognized object")
            problems = event_problems(event, self.routing_keys)
            if problems:
                self.refused.append((event if isinstance(event, dict) else {}, problems))
                return 400, {}, _error(problems)
            dedup_key = event.get("dedup_key") or uuid.uuid4().hex
            self.events.append({**event, "dedup_key": dedup_key})
            return (
                202,
                {},
                {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            )

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        if path != "/v2/enqueue":
            return 404, {}, {"status": "not found", "message": path}
        if "application/json" not in (headers.get("Content-Type") or ""):
            return 400, {}, _error(["Content-Type must be application/json"])
        return self.answer(body)

    def actions(self, dedup_key: str) -> list[str]:
        return [e["event_action"] for e in self.events if e["dedup_key"] == dedup_key]


def _error(errors: list[str], status: str = "invalid event") -> dict[str, Any]:
    return {"status": status, "message": "Event object is invalid", "errors": errors}
