"""A strict Opsgenie Alert API v2 on loopback, checked against Opsgenie's own description.

``tests/data/opsgenie/alert_api_subset.json`` is the alert part of Opsgenie's Swagger 2 file. The
stand-in reads from it the body of ``POST /v2/alerts`` (``CreateAlertPayload``, its ``allOf``
and ``$ref``s resolved), of the acknowledge and close actions (``AlertActionPayload``), the
``identifierType`` values and the responder types, and checks every request against them:
required fields, types, enum values, responders. It adds what Opsgenie's documentation states
and the file does not: the field limits (``LIMITS``, ``message`` ≤ 130 characters, ``alias``
≤ 512, …), that a team responder has a ``name`` or an ``id``, and ``Authorization: GenieKey
<key>``. Stricter than Opsgenie in one way: a field the description does not name is refused
(Opsgenie ignores it), so a misspelt field cannot pass unnoticed.

State: the alerts, each with its ``alias``, ``status`` (``open``, ``acked``, ``closed``), the
statuses it went through (``history``) and its ``count`` (a create for the alias of an alert not
closed only raises it, as Opsgenie deduplicates); a create for a closed alias opens a new alert.
Acknowledging an acknowledged alert, or closing a closed one, changes nothing.

Answers, in the description's shapes: 202 ``{result, took, requestId}`` (the request is also
kept for ``GET /v2/alerts/requests/{requestId}``); errors ``{message, took, requestId}`` (422
with ``errors``, field → reason): 400 a body that is not a JSON object or an ``identifierType``
outside its enum, 401 no or an unknown key, 403 a key without write access, 404 no alert for
the identifier, 422 a body the description or the limits refuse. Faults: at ``fault_rate``,
429 (with ``Retry-After``) or 500 *before* the request is applied; ``refusals`` answers the next
requests with the 4xx statuses listed, also before applying.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.openapi import TYPES
from tests.fakes.standin import Reply, Standin, lower

SPEC_FILE = Path(__file__).resolve().parents[1] / "data" / "opsgenie" / "alert_api_subset.json"

#: Served routes: (method, the description's path).
ROUTES = {
    ("POST", "/v2/alerts"),
    ("POST", "/v2/alerts/{identifier}/acknowledge"),
    ("POST", "/v2/alerts/{identifier}/close"),
    ("GET", "/v2/alerts/requests/{requestId}"),
}

#: Opsgenie's documented limits (characters), which its Swagger file does not carry.
LIMITS: Mapping[str, int] = {
    "message": 130,
    "alias": 512,
    "description": 15000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25000,
}
#: Limits of lists and maps: most items, most characters an item (tags, actions), all details.
MOST_ITEMS: Mapping[str, int] = {"tags": 20, "actions": 10, "responders": 50, "visibleTo": 50}
ITEM_LIMITS: Mapping[str, int] = {"tags": 50, "actions": 50}
DETAILS_LIMIT = 8000

MESSAGES: Mapping[int, str] = {
    400: "Invalid JSON body",
    401: "Could not authenticate",
    402: "apiKey is valid but the account cannot do this action because of subscription plan",
    403: "apiKey is valid but the apiKey cannot do this operation because of permissions",
    404: "Alert does not exist",
    422: "Request body is not processable. Please check the errors.",
    429: "You are making too many requests! To avoid errors, we recommend you limit requests.",
    500: "Internal Server Error",
}


#: Fields Opsgenie documents that the file's definitions leave out: a recipient's ``name`` (team,
#: escalation, schedule) and ``username`` (user); the file's Recipient names ``type`` and ``id``
#: only (its sub-types were not cut with it).
EXTENSIONS: Mapping[str, Mapping[str, Any]] = {
    "#/definitions/Recipient": {"name": {"type": "string"}, "username": {"type": "string"}},
}


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    return data


def resolve(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$ref`` followed and its ``allOf`` merged into one object schema."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        node: Any = spec()
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        found = resolve(node)
        if ref in EXTENSIONS:
            found["properties"] = {**found.get("properties", {}), **EXTENSIONS[ref]}
        return found
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf", []):
        sub = resolve(part)
        merged["properties"] = {**merged.get("properties", {}), **sub.get("properties", {})}
        merged["required"] = [*merged.get("required", []), *sub.get("required", [])]
        merged.setdefault("type", sub.get("type"))
    return merged


def _body_schema(path: str) -> dict[str, Any]:
    for parameter in spec()["paths"][path]["post"]["parameters"]:
        if parameter.get("in") == "body":
            return resolve(parameter["schema"])
    raise KeyError(path)


def create_schema() -> dict[str, Any]:
    return _body_schema("/v2/alerts")


def action_schema(action: str) -> dict[str, Any]:
    return _body_schema(f"/v2/alerts/{{identifier}}/{action}")


def identifier_types() -> list[str]:
    values: list[str] = spec()["parameters"]["AlertIdentifierType"]["enum"]
    return values


def response_schema(name: str) -> dict[str, Any]:
    return resolve(spec()["responses"][name]["schema"])


def schema_problems(
    value: Any, schema: Mapping[str, Any], path: str = "", *, closed: bool = True
) -> dict[str, str]:
    """Field → what is wrong with it under ``schema``: type, enum, required, nested; with
    ``closed`` (requests), a field the schema does not name (answers may carry more)."""
    schema = resolve(schema)
    where = path or "body"
    expected = schema.get("type")
    if isinstance(expected, str):
        types = TYPES.get(expected, (object,))
        wrong_bool = isinstance(value, bool) and expected in ("integer", "number")
        if not isinstance(value, types) or wrong_bool:
            return {where: f"must be of type {expected}"}
    if "enum" in schema and value not in schema["enum"]:
        return {where: f"must be one of {', '.join(map(str, schema['enum']))}"}
    problems: dict[str, str] = {}
    prefix = f"{path}." if path else ""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems[prefix + key] = "is required"
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                problems |= schema_problems(item, properties[key], prefix + key, closed=closed)
            elif isinstance(extra, dict):
                problems |= schema_problems(item, extra, prefix + key, closed=closed)
            elif properties and closed:
                problems[prefix + key] = "is not a field of this request"
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        for index, item in enumerate(value):
            problems |= schema_problems(item, items, f"{where}[{index}]", closed=closed)
    return problems


def _limit_problems(body: Mapping[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for key, most in LIMITS.items():
        value = body.get(key)
        if isinstance(value, str) and len(value) > most:
            problems[key] = f"must be at most {most} characters (is {len(value)})"
    for key, most in MOST_ITEMS.items():
        value = body.get(key)
        if isinstance(value, list) and len(value) > most:
            problems[key] = f"must have at most {most} items"
    for key, most in ITEM_LIMITS.items():
        for index, item in enumerate(body.get(key) or []):
            if isinstance(item, str) and len(item) > most:
                problems[f"{key}[{index}]"] = f"must be at most {most} characters"
    details = body.get("details")
    if isinstance(details, dict):
        size = sum(len(str(k)) + len(str(v)) for k, v in details.items())
        if size > DETAILS_LIMIT:
            problems["details"] = f"must be at most {DETAILS_LIMIT} characters in all"
    return problems


def create_problems(body: Any) -> dict[str, str]:
    """Every problem Opsgenie would name in its 422 for this create body."""
    problems = schema_problems(body, create_schema())
    if problems or not isinstance(body, dict):
        return problems
    if not body["message"].strip():
        problems["message"] = "Message can not be empty."
    for name in ("responders", "visibleTo"):
        for index, recipient in enumerate(body.get(name) or []):
            if recipient.get("type") in ("team", "escalation", "schedule") and not (
                recipient.get("id") or recipient.get("name")
            ):
                problems[f"{name}[{index}]"] = f"a {recipient['type']} needs an id or a name"
            if recipient.get("type") == "user" and not (
                recipient.get("id") or recipient.get("username")
            ):
                problems[f"{name}[{index}]"] = "a user needs an id or a username"
    return problems | _limit_problems(body)


def action_problems(action: str, body: Any) -> dict[str, str]:
    """Every problem Opsgenie would name for an acknowledge or close body."""
    return schema_problems(body, action_schema(action)) or _limit_problems(body)


@dataclass
class Alert:
    id: str
    tiny_id: str
    alias: str
    body: dict[str, Any]
    status: str = "open"
    count: int = 1
    history: list[str] = field(default_factory=lambda: ["open"])
    notes: list[str] = field(default_factory=list)

    def move(self, status: str) -> None:
        if self.status != status and self.status != "closed":
            self.status = status
            self.history.append(status)


@dataclass
class FakeOpsgenie(Standin):
    """The stand-in; ``with FakeOpsgenie(keys) as og:`` serves it on ``og.url``."""

    api_keys: set[str]
    read_only_keys: set[str] = field(default_factory=set)
    fault_rate: float = 0.0
    seed: int = 0
    retry_after: int = 1
    refusals: list[int] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    refused: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # requestId → status
    faults: dict[int, int] = field(default_factory=dict)  # status → how many injected
    requests: int = 0
    keys_used: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    # -- what a test reads ----------------------------------------------------------------

    def by_alias(self, alias: str) -> list[Alert]:
        return [a for a in self.alerts if a.alias == alias]

    def history(self, alias: str) -> list[list[str]]:
        """The statuses each alert of ``alias`` went through, oldest alert first."""
        return [a.history for a in self.by_alias(alias)]

    # -- answering ------------------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, JSON body) for one request (``headers`` named in lower case)."""
        with self._lock:
            self.requests += 1
            parts = urlsplit(target)
            segments = parts.path.split("/")
            route = _route(method, segments)
            if route is None:
                return _error(404, f"No route for {method} {parts.path}")
            auth = headers.get("authorization") or ""
            key = auth.removeprefix("GenieKey ").strip() if auth.startswith("GenieKey ") else ""
            if key not in self.api_keys | self.read_only_keys:
                return self._refuse(401, MESSAGES[401])
            self.keys_used.append(key)
            if route == ("GET", "/v2/alerts/requests/{requestId}"):
                return self._request_status(unquote(segments[-1]))
            if key in self.read_only_keys:
                return self._refuse(403, MESSAGES[403])
            draw = self._random.random()
            if draw < self.fault_rate:
                code = 429 if draw < self.fault_rate / 2 else 500
                self.faults[code] = self.faults.get(code, 0) + 1
                extra = {"Retry-After": str(self.retry_after)} if code == 429 else {}
                return _error(code, MESSAGES[code], extra)
            if self.refusals:
                code = self.refusals.pop(0)
                return self._refuse(code, MESSAGES.get(code, "Refused"))
            try:
                data = json.loads(body) if body else ({} if route[1] != "/v2/alerts" else None)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                return self._refuse(400, MESSAGES[400])
            if route[1] == "/v2/alerts":
                return self._create(data)
            identifier = unquote(segments[3])
            kind = (parse_qs(parts.query).get("identifierType") or ["id"])[0]
            if kind not in identifier_types():
                return self._refuse(400, f"Invalid identifierType [{kind}]")
            return self._act(segments[4], identifier, kind, data)

    def _refuse(
        self, code: int, message: str, errors: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        self.refused.append((code, message, errors or {}))
        status, headers, body = _error(code, message)
        if errors:
            body["errors"] = errors
        return status, headers, body

    def _create(self, data: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        problems = create_problems(data)
        if problems:
            return self._refuse(422, MESSAGES[422], problems)
        alias = data.get("alias") or uuid.uuid4().hex
        alert = next((a for a in self.by_alias(alias) if a.status != "closed"), None)
        if alert is not None:
            alert.count += 1
        else:
            number = len(self.alerts) + 1
            alert = Alert(id=uuid.uuid4().hex, tiny_id=str(number), alias=alias, body=data)
            self.alerts.append(alert)
        return self._accepted("Create", alert)

    def _act(
        self, action: str, identifier: str, kind: str, data: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        problems = action_problems(action, data)
        if problems:
            return self._refuse(422, MESSAGES[422], problems)
        field_of = {"id": "id", "alias": "alias", "tiny": "tiny_id"}[kind]
        found = [a for a in self.alerts if getattr(a, field_of) == identifier]
        if not found:
            return self._refuse(404, MESSAGES[404])
        alert = next((a for a in reversed(found) if a.status != "closed"), found[-1])
        alert.move("acked" if action == "acknowledge" else "closed")
        if data.get("note"):
            alert.notes.append(str(data["note"]))
        return self._accepted("Acknowledge" if action == "acknowledge" else "Close", alert)

    def _accepted(self, action: str, alert: Alert) -> tuple[int, dict[str, str], dict[str, Any]]:
        request_id = str(uuid.uuid4())
        self.statuses[request_id] = {
            "action": action,
            "isSuccess": True,
            "status": f"{action}d alert" if action != "Create" else "Created alert",
            "alertId": alert.id,
            "alias": alert.alias,
        }
        body = {"result": "Request will be processed", "took": 0.011, "requestId": request_id}
        return 202, {"X-Request-ID": request_id}, body

    def _request_status(self, request_id: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        status = self.statuses.get(request_id)
        if status is None:
            return self._refuse(404, "Request does not exist")
        return 200, {}, {"data": status, "took": 0.002, "requestId": str(uuid.uuid4())}

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        if body and "application/json" not in (headers.get("Content-Type") or ""):
            return _error(415, "Content-Type must be application/json")
        return self.answer(method, path, lower(headers), body)


def _route(method: str, segments: list[str]) -> tuple[str, str] | None:
    """The description's path for a request path split on ``/`` (``['', 'v2', 'alerts', …]``)."""
    if segments[:3] != ["", "v2", "alerts"]:
        return None
    rest = segments[3:]
    if method == "POST" and not rest:
        return method, "/v2/alerts"
    if method == "POST" and len(rest) == 2 and rest[0] and rest[1] in ("acknowledge", "close"):
        return method, f"/v2/alerts/{{identifier}}/{rest[1]}"
    if method == "GET" and len(rest) == 2 and rest[0] == "requests" and rest[1]:
        return method, "/v2/alerts/requests/{requestId}"
    return None


def _error(
    code: int, message: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    request_id = str(uuid.uuid4())
    body: dict[str, Any] = {"message": message, "took": 0.001, "requestId": request_id}
    return code, {"X-Request-ID": request_id, **(headers or {})}, body
