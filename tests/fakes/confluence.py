"""A strict Confluence Cloud (REST API v2, pages) on loopback, held to Atlassian's description.

``tests/data/confluence/pages_v2_subset.json`` is the part of Atlassian's
``openapi-v2.v3.json`` the export uses. The stand-in serves exactly these, under ``/wiki/api/v2``
as the real site does::

    GET /spaces?keys=…   GET /pages?space-id=…&title=…&status=…   POST /pages
    GET /pages/{id}      PUT /pages/{id}

and is as strict as Confluence: HTTP Basic with the account's email and API token (else 401);
request bodies checked against the description's schemas (required fields, types, the
``status`` and ``representation`` enums; 400 with the v2 error shape ``{errors: [{status, code,
title, detail}]}``); a ``storage`` body must parse as XHTML (400 "Error parsing xhtml", as
Confluence answers); a title is unique in a space (400 "A page with this title already
exists"); the parent must exist in the space (404); an update's version must be the current
one plus one (409 "Version must be incremented on update", as Confluence answers).

State: ``pages`` by id, each with its title, version and every version's storage body;
:meth:`page_titled`, :meth:`only_page` and :meth:`Page.text` read a page back.

Faults: ``fail_next`` (a list of statuses: 429 with ``Retry-After``, or 5xx, answered before
anything is applied), ``lose_next`` (that many writes are applied and then their connection
dropped without an answer: a lost answer) and ``fault_rate`` (random 429/500 before applying).
"""

from __future__ import annotations

import base64
import json
import random
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.openapi import Spec
from tests.fakes.standin import Reply, Standin

SPEC = Spec(Path(__file__).resolve().parents[1] / "data" / "confluence" / "pages_v2_subset.json")
API = "/wiki/api/v2"
#: The namespaces storage format uses, declared as Confluence's parser knows them.
_WRAP = (
    '<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource">'
    "{}</root>"
)


@dataclass
class Page:
    id: str
    space_id: str
    parent_id: str | None
    title: str
    status: str
    bodies: list[str] = field(default_factory=list)  # every version's storage value

    @property
    def version(self) -> int:
        return len(self.bodies)

    @property
    def body(self) -> str:
        return self.bodies[-1]

    def tree(self) -> ET.Element:
        return ET.fromstring(_WRAP.format(self.body))  # noqa: S314 (the stand-in's own page)

    def text(self) -> str:
        """What a reader sees: the body's text, tags gone."""
        return "".join(self.tree().itertext())


def _error(status: int, code: str, title: str) -> dict[str, Any]:
    return {"errors": [{"status": status, "code": code, "title": title, "detail": None}]}


def storage_problem(value: str) -> str | None:
    """Confluence's complaint about a storage body, None if it parses."""
    try:
        ET.fromstring(_WRAP.format(value))  # noqa: S314 (a test's input, on loopback)
    except ET.ParseError as error:
        return f"Error parsing xhtml: {error}"
    return None


@dataclass
class FakeConfluence(Standin):
    """``with FakeConfluence(email, token, spaces={"OPS": "131073"}) as c:`` serves ``c.url``."""

    METHODS = ("GET", "POST", "PUT", "DELETE")

    email: str
    token: str
    spaces: dict[str, str] = field(default_factory=lambda: {"OPS": "131073"})
    fail_next: list[int] = field(default_factory=list)
    lose_next: int = 0
    fault_rate: float = 0.0
    seed: int = 0
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    faults: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._next_id = 98305

    # -- reading back ------------------------------------------------------------------------

    def page_titled(self, title: str) -> Page | None:
        return next((p for p in self.pages.values() if p.title == title), None)

    def only_page(self) -> Page:
        assert len(self.pages) == 1, (
            f"{len(self.pages)} pages: {[p.title for p in self.pages.values()]}"
        )
        return next(iter(self.pages.values()))

    def add_page(self, space_key: str, title: str, body: str = "<p>x</p>") -> Page:
        """A page someone made by hand (a parent, or a title that is taken)."""
        page = Page(self._new_id(), self.spaces[space_key], None, title, "current", [body])
        self.pages[page.id] = page
        return page

    def edit(self, page_id: str, body: str) -> None:
        """Someone saves the page in the browser: a new version the exporter did not make."""
        self.pages[page_id].bodies.append(body)

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    # -- answers -----------------------------------------------------------------------------

    def _links(self, page: Page) -> dict[str, str]:
        key = next(k for k, v in self.spaces.items() if v == page.space_id)
        return {
            "webui": f"/spaces/{key}/pages/{page.id}/{page.title.replace(' ', '+')}",
            "editui": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": f"/x/{page.id}",
        }

    def _page_json(self, page: Page, *, body: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": page.id,
            "status": page.status,
            "title": page.title,
            "spaceId": page.space_id,
            "authorId": "5b10ac8d82e05b22cc7d4ef5",
            "createdAt": "2026-11-26T09:00:00.000Z",
            "version": {
                "number": page.version,
                "message": "",
                "minorEdit": False,
                "authorId": "5b10ac8d82e05b22cc7d4ef5",
                "createdAt": "2026-11-26T09:00:00.000Z",
            },
            "_links": self._links(page),
        }
        if page.parent_id:  # the description types it a string: absent when there is none
            data |= {"parentId": page.parent_id, "parentType": "page"}
        if body:
            data["body"] = {"storage": {"representation": "storage", "value": page.body}}
        return data

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header.removeprefix("Basic ")).decode()
        except ValueError:
            return False
        return given == f"{self.email}:{self.token}"

    def answer(
        self, method: str, target: str, auth: str | None, raw: bytes
    ) -> tuple[int, dict[str, str], Any] | None:
        """(status, headers, body) for one request; None: drop the connection unanswered."""
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, path))
            if not path.startswith(API + "/"):
                return 404, {}, _error(404, "NOT_FOUND", f"No route for {path}")
            route = path.removeprefix(API)
            if not self._authorised(auth):
                return 401, {}, _error(401, "UNAUTHORIZED", "Unauthorized; scope does not match")
            if self.fail_next or (self.fault_rate and self._random.random() < self.fault_rate):
                code = self.fail_next.pop(0) if self.fail_next else self._random.choice([429, 500])
                self.faults[code] = self.faults.get(code, 0) + 1
                if code == 429:
                    return (
                        429,
                        {"Retry-After": "1"},
                        _error(429, "TOO_MANY_REQUESTS", "Rate limit exceeded"),
                    )
                return code, {}, _error(code, "INTERNAL_SERVER_ERROR", "Internal Server Error")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return (
                    400,
                    {},
                    _error(
                        400, "INVALID_REQUEST_PARAMETER", "Unexpected character: body is not JSON"
                    ),
                )
            result = self._route(method, route, query, body)
            if (
                result is not None
                and method in ("POST", "PUT")
                and result[0] == 200
                and self.lose_next
            ):
                self.lose_next -= 1
                return None
            return result

    def _route(
        self, method: str, route: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if method == "GET" and route == "/spaces":
            keys = [k for v in query.get("keys", []) for k in v.split(",")]
            results = [
                {"id": sid, "key": key, "name": key, "type": "global", "status": "current",
                 "_links": {"webui": f"/spaces/{key}"}}
                for key, sid in self.spaces.items()
                if not keys or key in keys
            ]  # fmt: skip
            return 200, {}, {"results": results, "_links": {"base": self.url + "/wiki"}}
        if method == "GET" and route == "/pages":
            return self._list(query)
        if method == "POST" and route == "/pages":
            return self._create(body)
        if route.startswith("/pages/") and route.count("/") == 2:
            page_id = route.removeprefix("/pages/")
            if not page_id.isdigit():
                return 400, {}, _error(400, "INVALID_REQUEST_PARAMETER", "id must be a number")
            page = self.pages.get(page_id)
            if method == "GET":
                if page is None:
                    return 404, {}, _error(404, "NOT_FOUND", "Page not found")
                wanted = query.get("body-format", [""])[0] == "storage"
                answer = self._page_json(page, body=wanted)
                return (
                    200,
                    {},
                    {**answer, "_links": {**answer["_links"], "base": self.url + "/wiki"}},
                )
            if method == "PUT":
                return self._update(page, page_id, body)
        return 405, {}, _error(405, "METHOD_NOT_ALLOWED", f"{method} {route}")

    def _list(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        allowed = SPEC.parameter("get", "/pages", "status")["schema"]["items"]["enum"]
        statuses = [s for v in query.get("status", []) for s in v.split(",")] or ["current"]
        bad = [s for s in statuses if s not in allowed]
        if bad:
            return 400, {}, _error(400, "INVALID_REQUEST_PARAMETER", f"Invalid status: {bad[0]}")
        spaces = [s for v in query.get("space-id", []) for s in v.split(",")]
        if any(not s.isdigit() for s in spaces):
            return 400, {}, _error(400, "INVALID_REQUEST_PARAMETER", "space-id must be a number")
        title = query.get("title", [None])[0]
        found = [
            self._page_json(p, body=False)
            for p in self.pages.values()
            if (not spaces or p.space_id in spaces)
            and (title is None or p.title == title)
            and p.status in statuses
        ]
        return 200, {}, {"results": found, "_links": {"base": self.url + "/wiki"}}

    def _checked(self, body: Any, method: str, path: str) -> tuple[int, dict[str, str], Any] | None:
        problems = SPEC.problems(body, SPEC.request_schema(method, path))
        if problems:
            return 400, {}, _error(400, "INVALID_REQUEST_PARAMETER", "; ".join(problems))
        return None

    def _storage(
        self, body: dict[str, Any]
    ) -> tuple[str | None, tuple[int, dict[str, str], Any] | None]:
        value = body.get("body") or {}
        if "storage" in value:
            value = value["storage"]
        if value.get("representation") != "storage" or not isinstance(value.get("value"), str):
            return None, (
                400,
                {},
                _error(
                    400, "INVALID_REQUEST_PARAMETER", "body.representation must be storage here"
                ),
            )
        problem = storage_problem(value["value"])
        if problem:
            return None, (400, {}, _error(400, "INVALID_REQUEST_PARAMETER", problem))
        return value["value"], None

    def _taken(self, space_id: str, title: str, but: str | None = None) -> bool:
        return any(
            p.space_id == space_id and p.title == title and p.id != but and p.status == "current"
            for p in self.pages.values()
        )

    def _create(self, body: Any) -> tuple[int, dict[str, str], Any]:
        if (refused := self._checked(body, "post", "/pages")) is not None:
            return refused
        status = body.get("status", "current")
        title = body.get("title")
        if status == "current" and not title:
            return (
                400,
                {},
                _error(400, "INVALID_REQUEST_PARAMETER", "Title is required for a published page"),
            )
        space_id = body["spaceId"]
        if space_id not in self.spaces.values():
            return 404, {}, _error(404, "NOT_FOUND", f"Space {space_id} not found")
        parent = body.get("parentId")
        if parent is not None and (
            parent not in self.pages or self.pages[parent].space_id != space_id
        ):
            return 404, {}, _error(404, "NOT_FOUND", f"Parent page {parent} not found in the space")
        value, refused = self._storage(body)
        if refused is not None:
            return refused
        assert value is not None
        assert isinstance(title, str)
        if self._taken(space_id, title):
            return 400, {}, _error(
                400, "INVALID_REQUEST_PARAMETER",
                "A page with this title already exists: A page already exists with the same "
                "TITLE in this space",
            )  # fmt: skip
        page = Page(self._new_id(), space_id, parent, title, status, [value])
        self.pages[page.id] = page
        answer = self._page_json(page, body=True)
        return 200, {}, {**answer, "_links": {**answer["_links"], "base": self.url + "/wiki"}}

    def _update(
        self, page: Page | None, page_id: str, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if (refused := self._checked(body, "put", "/pages/{id}")) is not None:
            return refused
        if page is None:
            return 404, {}, _error(404, "NOT_FOUND", "Page not found")
        if str(body["id"]) != page_id:
            return (
                400,
                {},
                _error(400, "INVALID_REQUEST_PARAMETER", "id in the body does not match the path"),
            )
        number = (body.get("version") or {}).get("number")
        if not isinstance(number, int) or number != page.version + 1:
            return 409, {}, _error(
                409, "CONFLICT",
                f"Version must be incremented on update. Current version is: {page.version}",
            )  # fmt: skip
        value, refused = self._storage(body)
        if refused is not None:
            return refused
        assert value is not None
        if self._taken(page.space_id, body["title"], but=page.id):
            return (
                400,
                {},
                _error(400, "INVALID_REQUEST_PARAMETER", "A page with this title already exists"),
            )
        page.title = body["title"]
        page.status = body["status"]
        page.bodies.append(value)
        answer = self._page_json(page, body=True)
        return 200, {}, {**answer, "_links": {**answer["_links"], "base": self.url + "/wiki"}}

    # -- serving -----------------------------------------------------------------------------

    def reply(self, method: str, path: str, headers: Message, body: bytes) -> Reply | None:
        return self.answer(method, path, headers.get("Authorization"), body)
