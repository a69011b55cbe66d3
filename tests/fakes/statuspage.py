"""A strict Atlassian Statuspage REST API v1 on loopback, checked against its own description.

``tests/data/statuspage/statuspage_v1_subset.json`` is the subset of Atlassian's OpenAPI
description warroom uses. The stand-in reads the request schemas of ``POST
/pages/{page_id}/incidents``, ``PATCH /pages/{page_id}/incidents/{incident_id}`` and ``PATCH
/pages/{page_id}/components/{component_id}`` from it and refuses, with a 422 and Statuspage's
error shape ``{"error": [...]}``, a body it calls invalid: the missing ``incident`` or ``name``,
a wrong type, a value outside an enum (``status``, ``impact_override``, a component's status).
Beyond the schema it holds the rules the description states in prose and the real API keeps:
a realtime incident takes only the realtime statuses, ``name`` at most 255 characters and
``body`` 25,000, every top-level value of ``metadata`` an object, components of the page.

State: pages with components (their statuses) and incidents (with their updates, newest first,
as the API lists them). Every request needs ``Authorization: OAuth <key>`` with a known key
(401 otherwise); an unknown page or incident is 404. Fault injection: ``fault_rate`` draws 420,
429 (with ``Retry-After``) or 500 *before* anything is applied; :meth:`lose_next` applies the
next writes and then answers 500, as a connection lost after the change went through.
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.openapi import TYPES, Spec
from tests.fakes.standin import Reply, Standin

SPEC_FILE = (
    Path(__file__).resolve().parents[1] / "data" / "statuspage" / "statuspage_v1_subset.json"
)
REALTIME = ("investigating", "identified", "monitoring", "resolved")
NAME_MAX = 255
BODY_MAX = 25000

#: What the stand-in serves: (method, the description's path template).
ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/pages/{page_id}/incidents"),
    ("GET", "/pages/{page_id}/incidents"),
    ("GET", "/pages/{page_id}/incidents/unresolved"),
    ("GET", "/pages/{page_id}/incidents/{incident_id}"),
    ("PATCH", "/pages/{page_id}/incidents/{incident_id}"),
    ("GET", "/pages/{page_id}/components"),
    ("PATCH", "/pages/{page_id}/components/{component_id}"),
)


SPEC = Spec(SPEC_FILE)


def spec() -> dict[str, Any]:
    return SPEC.data


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    return SPEC.resolve(schema)


def request_schema(method: str, path: str) -> Mapping[str, Any]:
    return SPEC.request_schema(method, path)


def incident_schema(method: str = "POST") -> Mapping[str, Any]:
    path = "/pages/{page_id}/incidents" + ("" if method == "POST" else "/{incident_id}")
    return resolve(request_schema(method, path)["properties"]["incident"])


def incident_enum(name: str, method: str = "POST") -> list[str]:
    return list(incident_schema(method)["properties"][name]["enum"])


def component_status_enum(method: str = "POST") -> list[str]:
    """The statuses the description allows in ``incident.components`` (its one example key)."""
    (example,) = incident_schema(method)["properties"]["components"]["properties"].values()
    return list(example["enum"])


def schema_problems(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """What is wrong with ``value`` under ``schema``: type, enum, required, nested."""
    schema = resolve(schema)
    expected = schema.get("type")
    if isinstance(expected, str) and expected in TYPES:
        wrong_bool = isinstance(value, bool) and expected in ("integer", "number")
        if not isinstance(value, TYPES[expected]) or wrong_bool:
            return [f"{path} must be of type {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path} is not included in the list ({', '.join(map(str, schema['enum']))})"]
    problems: list[str] = []
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value or value[key] in (None, ""):
                problems.append(f"{path}.{key} can't be blank")
        for key, sub in schema.get("properties", {}).items():
            if key in value and value[key] is not None:
                problems += schema_problems(value[key], sub, f"{path}.{key}")
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        for index, item in enumerate(value):
            problems += schema_problems(item, items, f"{path}[{index}]")
    return problems


def _new_id() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=12))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeStatuspage(Standin):
    """The stand-in; ``with FakeStatuspage(keys, pages) as sp:`` serves it on ``sp.url``.

    ``pages`` maps a page id to its components (id → name); every component starts
    ``operational``.
    """

    METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")

    api_keys: set[str]
    pages: dict[str, dict[str, str]]
    fault_rate: float = 0.0
    seed: int = 0
    retry_after: int = 1
    incidents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    components: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    refused: list[tuple[str, str, int, Any]] = field(default_factory=list)
    faults: dict[int, int] = field(default_factory=dict)  # status → how many injected
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._lose = 0
        for page, names in self.pages.items():
            self.incidents.setdefault(page, {})
            self.components[page] = {
                cid: {
                    "id": cid,
                    "page_id": page,
                    "name": name,
                    "status": "operational",
                    "group": False,
                    "created_at": _now(),
                    "updated_at": _now(),
                }
                for cid, name in names.items()
            }

    def lose_next(self, count: int = 1) -> None:
        """Apply the next ``count`` writes, then answer 500 (the answer lost, the change made)."""
        self._lose = count

    # -- what the tests read ------------------------------------------------

    def all_incidents(self, page: str) -> list[dict[str, Any]]:
        return sorted(self.incidents[page].values(), key=lambda i: str(i["created_at"]))

    def of(self, page: str, marker: str) -> list[dict[str, Any]]:
        """The page's incidents warroom marked with ``marker`` (the incident key)."""
        return [
            i
            for i in self.all_incidents(page)
            if ((i.get("metadata") or {}).get("warroom") or {}).get("incident") == marker
        ]

    def component_status(self, page: str, component: str) -> str:
        return str(self.components[page][component]["status"])

    # -- the API --------------------------------------------------------------

    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            path = urlsplit(target).path
            self.requests.append((method, path))
            auth = headers.get("Authorization") or ""
            if not auth.startswith("OAuth ") or auth.removeprefix("OAuth ") not in self.api_keys:
                return self._refuse(method, path, 401, {"error": "Could not authenticate"})
            route = _route(method, path)
            if route is None:
                return self._refuse(method, path, 404, {"error": "Not found"})
            template, params = route
            page = params["page_id"]
            if page not in self.pages:
                return self._refuse(
                    method, path, 404, {"error": "The requested resource could not be found."}
                )
            draw = self._random.random()
            if draw < self.fault_rate:
                code = (420, 429, 500)[int(draw / self.fault_rate * 3) % 3]
                self.faults[code] = self.faults.get(code, 0) + 1
                if code == 500:
                    return 500, {}, {"error": "Internal server error"}
                return code, {"Retry-After": str(self.retry_after)}, {"error": "Rate limited"}
            data: Any = None
            if method in ("POST", "PATCH"):
                try:
                    data = json.loads(body or b"null")
                except ValueError:
                    return self._refuse(method, path, 400, {"error": "Invalid JSON"})
            code, answer = self._serve(method, template, params, data, urlsplit(target).query)
            if code >= 400:
                return self._refuse(method, path, code, answer)
            if method != "GET" and self._lose:
                self._lose -= 1
                return 500, {}, {"error": "Internal server error"}
            return code, {}, answer

    def _refuse(
        self, method: str, path: str, code: int, answer: Any
    ) -> tuple[int, dict[str, str], Any]:
        self.refused.append((method, path, code, answer))
        return code, {}, answer

    def _serve(
        self, method: str, template: str, params: dict[str, str], data: Any, query: str
    ) -> tuple[int, Any]:
        page = params["page_id"]
        incidents = self.incidents[page]
        if template == "/pages/{page_id}/incidents" and method == "GET":
            return 200, sorted(incidents.values(), key=lambda i: str(i["created_at"]), reverse=True)
        if template == "/pages/{page_id}/incidents/unresolved":
            per_page = int((parse_qs(query).get("per_page") or ["100"])[0])
            open_ = [i for i in incidents.values() if i["status"] in REALTIME[:3]]
            return 200, sorted(open_, key=lambda i: str(i["created_at"]), reverse=True)[:per_page]
        if template == "/pages/{page_id}/components" and method == "GET":
            return 200, list(self.components[page].values())
        if template == "/pages/{page_id}/components/{component_id}":
            component = self.components[page].get(params["component_id"])
            if component is None:
                return 404, {"error": "The requested resource could not be found."}
            schema = request_schema("PATCH", template)
            problems = (
                schema_problems(data, schema, "body")
                if isinstance(data, dict)
                else ["body must be an object"]
            )
            if problems:
                return 422, {"error": problems}
            component.update(data.get("component") or {})
            component["updated_at"] = _now()
            return 200, component
        if template == "/pages/{page_id}/incidents/{incident_id}":
            found = incidents.get(params["incident_id"])
            if found is None:
                return 404, {"error": "The requested resource could not be found."}
            if method == "GET":
                return 200, found
            return self._change(page, found, data, "PATCH")
        return self._change(page, None, data, "POST")

    def _change(
        self, page: str, incident: dict[str, Any] | None, data: Any, method: str
    ) -> tuple[int, Any]:
        path = "/pages/{page_id}/incidents" + ("" if method == "POST" else "/{incident_id}")
        if not isinstance(data, dict):
            return 422, {"error": ["body must be an object"]}
        problems = schema_problems(data, request_schema(method, path), "body")
        if "incident" not in data:
            problems.append("incident can't be blank")
        given: dict[str, Any] = data["incident"] if isinstance(data.get("incident"), dict) else {}
        problems += self._rules(page, given, creating=incident is None)
        if problems:
            return 422, {"error": problems}
        now = _now()
        if incident is None:
            incident = {
                "id": _new_id(),
                "page_id": page,
                "name": given["name"],
                "status": given.get("status") or "investigating",
                "impact": "none",
                "impact_override": None,
                "metadata": given.get("metadata") or {},
                "shortlink": f"http://stspg.io/{_new_id()[:9]}",
                "incident_updates": [],
                "components": [],
                "created_at": now,
                "updated_at": now,
                "resolved_at": None,
            }
            self.incidents[page][incident["id"]] = incident
        elif "name" in given:
            incident["name"] = given["name"]
        if "status" in given:
            incident["status"] = given["status"]
        if given.get("impact_override"):
            incident["impact_override"] = given["impact_override"]
            incident["impact"] = given["impact_override"]
        if "metadata" in given and method == "PATCH":
            incident["metadata"] = given["metadata"]
        affected = []
        for cid, status in dict(given.get("components") or {}).items():
            component = self.components[page][cid]
            affected.append(
                {
                    "code": cid,
                    "name": component["name"],
                    "old_status": component["status"],
                    "new_status": status,
                }
            )
            component["status"] = status
            component["updated_at"] = now
            if all(c["id"] != cid for c in incident["components"]):
                incident["components"].append(component)
        if "body" in given or "status" in given:
            incident["incident_updates"].insert(
                0,
                {
                    "id": _new_id(),
                    "incident_id": incident["id"],
                    "body": given.get("body") or "",
                    "status": incident["status"],
                    "affected_components": affected,
                    "created_at": now,
                    "display_at": now,
                    "deliver_notifications": given.get("deliver_notifications", True),
                },
            )
        if incident["status"] == "resolved" and incident["resolved_at"] is None:
            incident["resolved_at"] = now
        incident["updated_at"] = now
        return (201 if method == "POST" else 200), incident

    def _rules(self, page: str, given: dict[str, Any], *, creating: bool) -> list[str]:
        """What the description says in prose and the real API holds."""
        problems = []
        status = given.get("status")
        if status is not None and status not in REALTIME and not given.get("scheduled_for"):
            problems.append(f"Status {status} is only valid for scheduled maintenances")
        if len(str(given.get("name") or "")) > NAME_MAX:
            problems.append(f"Name is too long (maximum is {NAME_MAX} characters)")
        if len(str(given.get("body") or "")) > BODY_MAX:
            problems.append(f"Body is too long (maximum is {BODY_MAX} characters)")
        metadata = given.get("metadata")
        if isinstance(metadata, dict) and any(not isinstance(v, dict) for v in metadata.values()):
            problems.append("Metadata top-level values must be objects")
        allowed = component_status_enum("POST" if creating else "PATCH")
        for cid, value in dict(given.get("components") or {}).items():
            if cid not in self.components[page]:
                problems.append(f"Component {cid} was not found on this page")
            elif value not in allowed:
                problems.append(f"Component status {value} is not included in the list")
        for cid in given.get("component_ids") or []:
            if cid not in self.components[page]:
                problems.append(f"Component {cid} was not found on this page")
        return problems

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        if not path.startswith("/v1/"):
            return 404, {}, {"error": "Not found"}
        if body and "application/json" not in (headers.get("Content-Type") or ""):
            return 415, {}, {"error": "Content-Type must be application/json"}
        return self.answer(method, path.removeprefix("/v1"), dict(headers), body)


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The served template ``path`` matches (literal segments first), with its parameters."""
    path = path.removesuffix(".json")
    matches = []
    for verb, template in ROUTES:
        if verb != method:
            continue
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[A-Za-z0-9]+)", template)
        if found := re.fullmatch(pattern, path):
            matches.append((template.count("{"), template, found.groupdict()))
    if not matches:
        return None
    _, template, params = min(matches)
    return template, params
