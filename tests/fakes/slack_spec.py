"""Slack's own description of the Web API, and checks of calls against it.

Two sources, both vendored in ``tests/data/slack`` (see the README there):

- ``slack_web_openapi_v2.json``: Slack's OpenAPI 2 file (last regenerated in 2020). It has each
  method's arguments, error codes and the schema of a successful answer.
- ``methods.txt``: for the methods an incident bot uses, the rate-limit tier, error codes and
  arguments as Slack's current method pages list them (``*`` marks a required argument). It also
  covers the methods that are newer than the OpenAPI file (bookmarks.*, files.*External).

A method's allowed arguments and error codes are the union of both sources (the OpenAPI file
keeps arguments that still work, methods.txt adds the new ones); its required arguments come
from methods.txt when it lists the method, else from the OpenAPI file. ``SUPPLEMENT`` holds the
few methods neither source covers, copied from Slack's method pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.data import SLACK_DIR

# Errors every method may answer (the "common errors" on each of Slack's method pages, plus
# `unknown_method` and the body-parsing errors of the OpenAPI file).
GENERIC_ERRORS: frozenset[str] = frozenset(
    {
        "access_denied",
        "accesslimited",
        "account_inactive",
        "deprecated_endpoint",
        "ekm_access_denied",
        "enterprise_is_restricted",
        "fatal_error",
        "internal_error",
        "invalid_arg_name",
        "invalid_arguments",
        "invalid_array_arg",
        "invalid_auth",
        "invalid_charset",
        "invalid_form_data",
        "invalid_json",
        "invalid_post_type",
        "is_bot",
        "json_not_object",
        "method_deprecated",
        "missing_argument",
        "missing_post_type",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "not_authed",
        "org_login_required",
        "ratelimited",
        "request_timeout",
        "service_unavailable",
        "team_access_not_granted",
        "team_added_to_org",
        "token_expired",
        "token_revoked",
        "two_factor_setup_required",
        "unknown_method",
        "upgrade_required",
    }
)

# Sent by slack_sdk itself on every call once a client knows its workspace (org-wide apps),
# and accepted by every Web API method.
CLIENT_ARGS = frozenset({"token", "team_id"})

OPENAPI_FILE = "slack_web_openapi_v2.json"
METHODS_FILE = "methods.txt"


@dataclass(frozen=True)
class MethodSpec:
    """What Slack says about one Web API method."""

    name: str
    args: frozenset[str]
    required: frozenset[str]
    errors: frozenset[str]
    tier: str | None
    sources: tuple[str, ...]
    success_schema: Mapping[str, Any] | None = None

    @property
    def allowed_errors(self) -> frozenset[str]:
        return self.errors | GENERIC_ERRORS


# Methods neither the OpenAPI file nor methods.txt describes (from Slack's method pages).
SUPPLEMENT: Mapping[str, MethodSpec] = {
    "bookmarks.list": MethodSpec(
        name="bookmarks.list",
        args=frozenset({"channel_id"}),
        required=frozenset({"channel_id"}),
        errors=frozenset({"channel_not_found", "not_implemented"}),
        tier="Tier 3",
        sources=("supplement",),
    ),
    # Socket Mode came after the 2020 OpenAPI file and methods.txt, so neither lists it. From
    # Slack's method page: no arguments but the app-level token (xapp-, scope
    # connections:write), Tier 1, and these errors besides the common ones (a bot or user token
    # gets the common not_allowed_token_type). The success is {"ok": true, "url": "wss://..."}.
    "apps.connections.open": MethodSpec(
        name="apps.connections.open",
        args=frozenset(),
        required=frozenset(),
        errors=frozenset({"access_denied"}),
        tier="Tier 1",
        sources=("supplement",),
        success_schema={
            "type": "object",
            "required": ["ok", "url"],
            "properties": {"ok": {"type": "boolean"}, "url": {"type": "string"}},
        },
    ),
}


# Where Slack's live answers differ from its 2020 schemas: (method, start of the problem, why).
KNOWN_SCHEMA_GAPS: tuple[tuple[str, str, str], ...] = (
    (
        "chat.update",
        "/message/blocks: expected object",
        "the schema types blocks as an object; Slack sends the array of blocks",
    ),
    (
        "conversations.replies",
        "/messages/0: missing required",
        "a message without replies comes back alone, without the thread fields",
    ),
)


def slack_data_dir() -> Path:
    """The folder holding Slack's reference files."""
    return SLACK_DIR


@dataclass(frozen=True)
class _TxtEntry:
    tier: str | None
    errors: frozenset[str]
    args: frozenset[str]
    required: frozenset[str]


_HEADER = re.compile(r"^## (?P<name>[\w.]+) \| (?P<limit>[^|]*)\|")
_TIER = re.compile(r"Tier \d")


def parse_methods_txt(text: str) -> dict[str, _TxtEntry]:
    """Read methods.txt: a `## name | limit | scopes` line, then `errors:` and `args:` lines."""
    entries: dict[str, _TxtEntry] = {}
    name: str | None = None
    tier: str | None = None
    errors: frozenset[str] = frozenset()
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            name = header["name"]
            tier_match = _TIER.search(header["limit"])
            tier = tier_match.group(0) if tier_match else "Special"
            errors = frozenset()
            continue
        stripped = line.strip()
        if name is None:
            continue
        if stripped.startswith("errors:"):
            errors = frozenset(_split_list(stripped.removeprefix("errors:")))
        elif stripped.startswith("args:"):
            raw = _split_list(stripped.removeprefix("args:"))
            args = frozenset(a.lstrip("*") for a in raw)
            required = frozenset(a[1:] for a in raw if a.startswith("*"))
            entries[name] = _TxtEntry(tier=tier, errors=errors, args=args, required=required)
    return entries


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class SlackSpec:
    """The methods Slack describes, with checks of requests and answers against them."""

    def __init__(self, methods: Mapping[str, MethodSpec], definitions: Mapping[str, Any]) -> None:
        self.methods = dict(methods)
        self.definitions = definitions

    def method(self, name: str) -> MethodSpec | None:
        return self.methods.get(name)

    def check_request(self, method: str, args: Mapping[str, object]) -> list[str]:
        """Problems with a call's arguments: unknown method, unknown names, missing required."""
        spec = self.methods.get(method)
        if spec is None:
            return [f"{method}: not a method in Slack's spec"]
        names = set(args) - CLIENT_ARGS
        problems = [
            f"{method}: unknown argument {name!r} (Slack's spec knows {sorted(spec.args)})"
            for name in sorted(names - spec.args)
        ]
        problems += [
            f"{method}: missing required argument {name!r}"
            for name in sorted(spec.required)
            if args.get(name) is None  # present but empty is Slack's to judge (a cleared topic)
        ]
        return problems

    def check_response(self, method: str, status: int, body: Mapping[str, Any]) -> list[str]:
        """Problems with an answer: an error code Slack does not list, or a malformed success."""
        spec = self.methods.get(method)
        if body.get("ok") is False:
            error = body.get("error")
            allowed = spec.allowed_errors if spec else GENERIC_ERRORS
            if error not in allowed:
                return [f"{method}: error {error!r} is not one Slack lists for this method"]
            return []
        if status != 200:
            return [f"{method}: HTTP {status} with ok={body.get('ok')!r}"]
        if spec is None or spec.success_schema is None:
            return []
        gaps = [start for name, start, _ in KNOWN_SCHEMA_GAPS if name == method]
        return [
            f"{method}: {problem}"
            for problem in _schema_problems(body, spec.success_schema, self.definitions, "")
            if not any(problem.startswith(start) for start in gaps)
        ]


def _schema_problems(
    value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any], path: str, depth: int = 0
) -> list[str]:
    """A small JSON-schema check: $ref, alternatives, type, enum, pattern, required, nesting.

    Extra properties are not reported: Slack's answers carry more fields than its 2020 schemas.
    A null value is accepted wherever a value is allowed (Slack sends many nulls).
    """
    if depth > 20 or value is None:
        return []
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = defs.get(ref.rsplit("/", 1)[-1], {})
    alternatives = _alternatives(schema)
    if alternatives:
        results = [_schema_problems(value, alt, defs, path, depth + 1) for alt in alternatives]
        if any(not result for result in results):
            return []
        return min(results, key=len)
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None and not _type_ok(value, expected):
        return [f"{path or '/'}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path or '/'}: {value!r} not in {schema['enum']}")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and isinstance(value, str) and not re.search(pattern, value):
        problems.append(f"{path or '/'}: {value!r} does not match {pattern}")
    if isinstance(value, dict):
        problems += [
            f"{path or '/'}: missing required {key!r}"
            for key in schema.get("required", [])
            if key not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += _schema_problems(value[key], sub, defs, f"{path}/{key}", depth + 1)
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, dict):
        for index, item in enumerate(value[:50]):
            problems += _schema_problems(item, items, defs, f"{path}/{index}", depth + 1)
    return problems


def _alternatives(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return list(schema[key])
    # Slack's generator writes some alternatives as a list under "items" of a typeless schema.
    items = schema.get("items")
    if isinstance(items, list) and schema.get("type") in (None, "object"):
        return list(items)
    return []


_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: Any, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    for name in names:
        types = _PY_TYPES.get(name)
        if types is None:
            return True
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, types):
            return True
    return False


def build_spec(openapi: Mapping[str, Any], methods_txt: str) -> SlackSpec:
    txt = parse_methods_txt(methods_txt)
    methods: dict[str, MethodSpec] = {}
    for path, operations in openapi.get("paths", {}).items():
        name = path.lstrip("/")
        for operation in operations.values():
            methods[name] = _merge(name, operation, txt.get(name))
            break
    for name, entry in txt.items():
        if name not in methods:
            methods[name] = MethodSpec(
                name=name,
                args=entry.args,
                required=entry.required,
                errors=entry.errors,
                tier=entry.tier,
                sources=("methods.txt",),
            )
    for name, spec in SUPPLEMENT.items():
        methods.setdefault(name, spec)
    return SlackSpec(methods, openapi.get("definitions", {}))


def _merge(name: str, operation: Mapping[str, Any], entry: _TxtEntry | None) -> MethodSpec:
    params = [p for p in operation.get("parameters", []) if p.get("name") != "token"]
    args = frozenset(p["name"] for p in params)
    required = frozenset(p["name"] for p in params if p.get("required"))
    responses = operation.get("responses", {})
    error_schema = responses.get("default", {}).get("schema", {})
    errors = frozenset(error_schema.get("properties", {}).get("error", {}).get("enum") or [])
    success = responses.get("200", {}).get("schema")
    if entry is None:
        return MethodSpec(name, args, required, errors, None, ("openapi",), success)
    return MethodSpec(
        name=name,
        args=args | entry.args,
        required=entry.required,
        errors=errors | entry.errors,
        tier=entry.tier,
        sources=("openapi", "methods.txt"),
        success_schema=success,
    )


@lru_cache(maxsize=4)
def load_spec(folder: Path | None = None) -> SlackSpec:
    """Slack's spec from the vendored folder (cached: the OpenAPI file is 1.2 MB)."""
    folder = folder or slack_data_dir()
    openapi = json.loads((folder / OPENAPI_FILE).read_text(encoding="utf-8"))
    methods_txt = (folder / METHODS_FILE).read_text(encoding="utf-8")
    return build_spec(openapi, methods_txt)
