"""Confluence Cloud as the export port: one page per incident, REST API v2 (``/wiki/api/v2``).

Calls (all with HTTP Basic, the account's email and API token)::

    GET  /spaces?keys=<space>                      the space's id (once per target)
    GET  /pages?space-id=…&title=…&status=current  find: the page a lost answer made
    POST /pages                                    create, under ``parent_id``
    GET  /pages/{id}                               the current version (after a 409)
    PUT  /pages/{id}                               update: version number + 1

The body is Confluence's *storage format*, XHTML. :func:`storage_format` builds it from the
draft's HTML with a converter that keeps only the elements a review uses, drops every attribute
but a link's ``href`` (http, https, mailto), escapes all text, removes what XML 1.0 cannot hold
(control characters) and closes every element, so whatever an incident's text says (``<script>``,
``]]>``, ``&``, a lone ``<``) it arrives as text and the page always parses.

Answers map onto :mod:`bot.ports.errors`: 400, 401, 403, 404, 413 and 422 are
:class:`Refused` with Confluence's own message; 429 is :class:`Throttled` (after
``Retry-After``); 5xx and lost connections :class:`Unavailable`. A 409 on update (someone saved
the page meanwhile) re-reads the version and retries; a create refused because the title exists
(a lost answer's page) finds that page and updates it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.config.export import ConfluenceTarget
from bot.ports.errors import Refused, Unavailable
from bot.ports.export import ExportDocument, ExportRef
from integrations.http_errors import json_of, one_line, send

TIMEOUT_S = 20.0
CONFLICT_RETRIES = 3
API = "/wiki/api/v2"

# -- storage format -------------------------------------------------------------------------

#: Elements kept, as storage format spells them (``b`` → ``strong``, ``i`` → ``em``).
_KEEP = {
    "p": "p",
    "h1": "h1",
    "h2": "h2",
    "h3": "h3",
    "h4": "h4",
    "h5": "h5",
    "h6": "h6",
    "ul": "ul",
    "ol": "ol",
    "li": "li",
    "strong": "strong",
    "b": "strong",
    "em": "em",
    "i": "em",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "table": "table",
    "thead": "thead",
    "tbody": "tbody",
    "tr": "tr",
    "th": "th",
    "td": "td",
    "a": "a",
    "del": "del",
    "s": "del",
    "sub": "sub",
    "sup": "sup",
}
_VOID = {"br": "<br />", "hr": "<hr />"}
#: Elements whose content is dropped with them (not text a reader should see).
_DROP = {"script", "style", "iframe", "object", "embed", "template", "head", "title"}
_SCHEMES = ("http", "https", "mailto")
#: What XML 1.0 cannot hold: C0 controls but tab, LF, CR; lone surrogates; U+FFFE, U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` as XML character data: ``&``, ``<``, ``>`` (so never ``]]>``) escaped."""
    text = _NOT_XML.sub("\ufffd", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_attr(text: str) -> str:
    return xml_text(text).replace('"', "&quot;")


def _safe_href(href: str) -> str | None:
    href = href.strip()
    scheme = urlsplit(href).scheme.lower()
    return href if scheme in _SCHEMES else None


class _Storage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            self.dropping += 1
            return
        if self.dropping:
            return
        if tag in _VOID:
            self.out.append(_VOID[tag])
            return
        name = _KEEP.get(tag)
        if name is None:
            return
        if name == "a":
            href = _safe_href(dict(attrs).get("href") or "")
            self.out.append(f'<a href="{_xml_attr(href)}">' if href else "<a>")
        else:
            self.out.append(f"<{name}>")
        self.open.append(name)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            return
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and _KEEP.get(tag):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self.dropping = max(self.dropping - 1, 0)
            return
        if self.dropping:
            return
        name = _KEEP.get(tag)
        if name is None or name not in self.open:
            return  # a stray end tag: nothing to close
        while self.open:
            last = self.open.pop()
            self.out.append(f"</{last}>")
            if last == name:
                break

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(xml_text(data))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def storage_format(html: str) -> str:
    """The draft's HTML as Confluence storage format: well-formed XHTML, all text as text."""
    parser = _Storage()
    parser.feed(html)
    storage = parser.result()
    # Our own output, so no DTD or entity can be in it (every "<" and "&" of text is escaped):
    # it parses, or this is a bug worth a traceback rather than a page Confluence refuses.
    ET.fromstring(f"<root>{storage}</root>")  # noqa: S314
    return storage


# -- the adapter ----------------------------------------------------------------------------


class ConfluenceExporter:
    """The export port over the ``kind: confluence`` targets of ``export.targets``."""

    def __init__(
        self,
        targets: Mapping[str, ConfluenceTarget],
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.timeout = timeout
        self.transport = transport
        self._space_ids: dict[str, str] = {}

    def _config(self, target: str) -> ConfluenceTarget:
        config = self.targets.get(target)
        if config is None:
            raise Refused(f"no confluence export target {target!r} is configured")
        return config

    def _client(self, target: str) -> httpx.AsyncClient:
        config = self._config(target)
        credentials = config.credentials()
        if credentials is None:
            raise Refused(f"{target}: {config.email_env} or {config.token_env} is not set")
        return httpx.AsyncClient(
            base_url=config.url + API,
            auth=httpx.BasicAuth(*credentials),
            timeout=self.timeout,
            transport=self.transport,
            headers={"Accept": "application/json"},
        )

    async def find(self, target: str, document: ExportDocument) -> ExportRef | None:
        async with self._client(target) as client:
            return await self._find(client, target, document.title)

    async def export(
        self, target: str, document: ExportDocument, existing: ExportRef | None
    ) -> ExportRef:
        config = self._config(target)
        body = storage_format(document.html)
        async with self._client(target) as client:
            if existing is None:
                space_id = await self._space_id(client, target)
                create: dict[str, Any] = {
                    "spaceId": space_id,
                    "status": "current",
                    "title": document.title,
                    "body": {"representation": "storage", "value": body},
                }
                if config.parent_id:
                    create["parentId"] = config.parent_id
                answer = await _call(client, target, "POST", "/pages", json=create)
                if answer.status_code == 200:
                    return _ref(config, answer)
                if answer.status_code == 400 and "already exists" in _said(answer).lower():
                    existing = await self._find(client, target, document.title)
                if existing is None:
                    raise _refused(target, answer)
            return await self._update(client, target, config, document, existing, body)

    async def _update(
        self,
        client: httpx.AsyncClient,
        target: str,
        config: ConfluenceTarget,
        document: ExportDocument,
        existing: ExportRef,
        body: str,
    ) -> ExportRef:
        version = int(existing.version) if existing.version.isdigit() else None
        for _ in range(CONFLICT_RETRIES):
            if version is None:
                current = await _call(client, target, "GET", f"/pages/{existing.id}")
                if current.status_code != 200:
                    raise _refused(target, current)
                version = int(json_of(current).get("version", {}).get("number", 1))
            update = {
                "id": existing.id,
                "status": "current",
                "title": document.title,
                "body": {"representation": "storage", "value": body},
                "version": {"number": version + 1, "message": f"warroom: {document.key}"},
            }
            answer = await _call(client, target, "PUT", f"/pages/{existing.id}", json=update)
            if answer.status_code == 200:
                return _ref(config, answer)
            if answer.status_code != 409:
                raise _refused(target, answer)
            version = None  # someone saved meanwhile: read the version again
        raise Unavailable(
            f"{target}: page {existing.id} kept changing (409 {CONFLICT_RETRIES} times)",
            uncertain=False,
        )

    async def _space_id(self, client: httpx.AsyncClient, target: str) -> str:
        if target in self._space_ids:
            return self._space_ids[target]
        space = self._config(target).space
        answer = await _call(client, target, "GET", "/spaces", params={"keys": space})
        if answer.status_code != 200:
            raise _refused(target, answer)
        results = json_of(answer).get("results") or []
        if not results:
            raise Refused(f"{target}: no space {space!r} that the account can see")
        self._space_ids[target] = str(results[0]["id"])
        return self._space_ids[target]

    async def _find(self, client: httpx.AsyncClient, target: str, title: str) -> ExportRef | None:
        space_id = await self._space_id(client, target)
        params = {"space-id": space_id, "title": title, "status": "current"}
        answer = await _call(client, target, "GET", "/pages", params=params)
        if answer.status_code != 200:
            raise _refused(target, answer)
        data = json_of(answer)
        for page in data.get("results") or []:
            if page.get("title") == title:
                return _ref_of(self._config(target), page, data.get("_links") or {})
        return None


async def _call(
    client: httpx.AsyncClient, target: str, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request; throttling, 5xx and lost connections raised, the rest returned."""
    return await send(client, target, method, path, said=_said, **kwargs)


def _ref(config: ConfluenceTarget, answer: httpx.Response) -> ExportRef:
    page = json_of(answer)
    return _ref_of(config, page, page.get("_links") or {})


def _ref_of(config: ConfluenceTarget, page: dict[str, Any], links: dict[str, Any]) -> ExportRef:
    webui = (page.get("_links") or {}).get("webui")
    base = links.get("base") or f"{config.url}/wiki"
    url = f"{base}{webui}" if isinstance(webui, str) and webui.startswith("/") else None
    version = (page.get("version") or {}).get("number")
    return ExportRef(id=str(page["id"]), url=url, version=str(version or ""))


def _refused(target: str, answer: httpx.Response) -> Refused:
    return Refused(f"{target}: HTTP {answer.status_code}: {_said(answer)}")


def _said(answer: httpx.Response) -> str:
    """Confluence's v2 error shape ``{errors: [{status, code, title, detail}]}``, the v1 one
    ``{statusCode, message}``, else the text, in one line."""
    data = json_of(answer)
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, dict):
                said = error.get("title") or error.get("code") or ""
                detail = error.get("detail")
                parts.append(f"{said} ({detail})" if detail else str(said))
        if parts:
            return "; ".join(parts)[:300]
    if data.get("message"):
        return str(data["message"])[:300]
    return one_line(answer.text) or answer.reason_phrase
