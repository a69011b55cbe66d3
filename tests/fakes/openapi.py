"""A vendored OpenAPI description, read by the stand-ins that hold themselves to it.

:class:`Spec` resolves ``$ref``s and checks a JSON value against a schema the way a vendor's
validation does for the parts those descriptions use: ``type``, ``enum``, ``required``,
``properties``, ``items``, ``oneOf`` / ``anyOf`` (one alternative must fit) and ``allOf``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


class Spec:
    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return loaded

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str):
            found: Any = self.data
            for part in ref.removeprefix("#/").split("/"):
                found = found[part]
            return self.resolve(found)
        return node

    def operation(self, method: str, path: str) -> Mapping[str, Any]:
        found: Mapping[str, Any] = self.data["paths"][path][method.lower()]
        return found

    def has(self, method: str, path: str) -> bool:
        return method.lower() in self.data["paths"].get(path, {})

    def request_schema(self, method: str, path: str) -> Mapping[str, Any]:
        body = self.resolve(self.operation(method, path)["requestBody"])
        return self.resolve(body["content"]["application/json"]["schema"])

    def parameter(self, method: str, path: str, name: str) -> Mapping[str, Any]:
        for param in self.operation(method, path).get("parameters", []):
            param = self.resolve(param)
            if param.get("name") == name:
                return param
        raise KeyError(f"{method} {path} has no parameter {name!r}")

    def schema(self, name: str) -> Mapping[str, Any]:
        return self.resolve(self.data["components"]["schemas"][name])

    def problems(self, value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
        """What is wrong with ``value`` under ``schema`` (empty: it fits)."""
        schema = self.resolve(schema)
        where = path or "body"
        for part in schema.get("allOf", []):
            found = self.problems(value, part, path)
            if found:
                return found
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self.problems(value, option, path) for option in schema[key]]
                if all(options):
                    return [f"'{where}' matches none of the allowed shapes: {options[0][0]}"]
        expected = schema.get("type")
        if isinstance(expected, str):
            types = TYPES.get(expected, (object,))
            wrong_bool = isinstance(value, bool) and expected in ("integer", "number")
            if value is None and schema.get("nullable"):
                return []
            if not isinstance(value, types) or wrong_bool:
                return [f"'{where}' must be of type {expected}"]
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(repr(v) for v in schema["enum"])
            return [f"'{where}' must be one of {allowed}"]
        problems: list[str] = []
        if isinstance(value, dict):
            for key in schema.get("required", []):
                if key not in value:
                    problems.append(f"'{path + '.' if path else ''}{key}' is required")
            for key, sub in schema.get("properties", {}).items():
                if key in value:
                    problems += self.problems(value[key], sub, f"{path + '.' if path else ''}{key}")
        items = schema.get("items")
        if isinstance(value, list) and isinstance(items, dict):
            for index, item in enumerate(value):
                problems += self.problems(item, items, f"{where}[{index}]")
        return problems
