"""The one error a parser raises for a body it cannot read, and the readers that raise it.

Every parser in ``bot.intake.alerts`` turns *any* JSON value into a ``Delivery`` or raises
:class:`PayloadError` naming where in the body the problem is, as a dotted path
(``alerts[0].startsAt``, ``event.data.id``; ``$`` is the whole body).  The small
typed readers below are what the parsers use to walk a body, so that a wrong
type anywhere becomes a ``PayloadError`` and never a ``KeyError`` or
``TypeError``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping

ROOT = "$"
"""The field name used when the whole body is wrong (not an object, say)."""

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_SHOW_LIMIT = 80
INT_LIMIT = 2**63
"""Integers a sender can mean (64-bit); anything larger is rejected, not converted."""


class PayloadError(ValueError):
    """A webhook body that does not have the shape its sender promises.

    ``field`` is a dotted/indexed path into the body (``alerts[0].labels``),
    ``message`` says what is wrong with it.  ``str()`` reads
    ``"alerts[0].startsAt: not an RFC 3339 time: 'abc'"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[PayloadError], tuple[str, str]]:
        return (type(self), (self.field, self.message))


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def show(value: object) -> str:
    """A short ``repr`` of ``value`` for an error message."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # too deep, or an int too long for str()
        text = f"<{json_type(value)} too large to show>"
    if len(text) > _SHOW_LIMIT:
        text = text[: _SHOW_LIMIT - 1] + "…"
    return text


@functools.lru_cache(maxsize=4096)
def child(parent: str, key: str | int) -> str:
    """The path of ``parent``'s member ``key``: ``alerts`` + 0 → ``alerts[0]``.

    Remembered: every alert of every body asks for the same few paths (``alerts[3].labels``)."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    segment = key if _IDENTIFIER.match(key) else None
    if parent == ROOT:
        return segment if segment is not None else f"{ROOT}[{json.dumps(key)}]"
    if segment is None:
        return f"{parent}[{json.dumps(key)}]"
    return f"{parent}.{segment}"


def wrong_type(field: str, expected: str, value: object) -> PayloadError:
    return PayloadError(field, f"expected {expected}, got {json_type(value)}: {show(value)}")


def expect_object(value: object, field: str) -> dict[str, object]:
    """``value`` as a JSON object (a ``dict`` with string keys)."""
    if not isinstance(value, dict):
        raise wrong_type(field, "an object", value)
    for key in value:
        if not isinstance(key, str):
            raise PayloadError(field, f"object key is not a string: {show(key)}")
    return value


def expect_array(value: object, field: str) -> list[object]:
    if not isinstance(value, list):
        raise wrong_type(field, "an array", value)
    return value


def expect_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise wrong_type(field, "a string", value)
    return value


def require(obj: Mapping[str, object], key: str, parent: str) -> object:
    """``obj[key]``, which must be present and not null."""
    value = obj.get(key)
    if value is None:
        raise PayloadError(child(parent, key), "required field is missing")
    return value


def req_str(obj: Mapping[str, object], key: str, parent: str) -> str:
    """A required string member; empty strings count as missing."""
    value = expect_str(require(obj, key, parent), child(parent, key))
    if not value.strip():
        raise PayloadError(child(parent, key), "required field is empty")
    return value


def opt_str(obj: Mapping[str, object], key: str, parent: str) -> str | None:
    """An optional string member: absent or null gives ``None``."""
    value = obj.get(key)
    if value is None:
        return None
    return expect_str(value, child(parent, key))


def req_object(obj: Mapping[str, object], key: str, parent: str) -> dict[str, object]:
    return expect_object(require(obj, key, parent), child(parent, key))


def opt_object(obj: Mapping[str, object], key: str, parent: str) -> dict[str, object] | None:
    value = obj.get(key)
    if value is None:
        return None
    return expect_object(value, child(parent, key))


def str_map(obj: Mapping[str, object], key: str, parent: str) -> dict[str, str]:
    """A member that is a map of string to string (labels, annotations).

    Absent or null gives ``{}`` (Go marshals a nil map as ``null``).
    """
    value = obj.get(key)
    if value is None:
        return {}
    field = child(parent, key)
    mapping = expect_object(value, field)
    for name, item in mapping.items():
        if not isinstance(item, str):  # the path only for the error: labels are many
            raise wrong_type(child(field, name), "a string", item)
    return dict(mapping)  # type: ignore[arg-type]


def opt_int(obj: Mapping[str, object], key: str, parent: str) -> int | None:
    """An optional integer member (a JSON number with no fraction)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(child(parent, key), "an integer", value)
    if isinstance(value, float):
        if not value.is_integer():
            raise wrong_type(child(parent, key), "an integer", value)
        value = int(value)
    if not -INT_LIMIT < value < INT_LIMIT:
        raise PayloadError(child(parent, key), f"integer out of range: {show(value)}")
    return value


def scalar_text(value: object, field: str) -> str:
    """A string, or a number written as text (templated senders mix the two)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong_type(field, "a string", value)
    if isinstance(value, int) and not -INT_LIMIT < value < INT_LIMIT:
        raise PayloadError(field, f"integer out of range: {show(value)}")
    return str(value)


def to_json_text(value: object, field: str) -> str:
    """``value`` as compact JSON text (for free-form details kept as strings)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(field, f"not representable as JSON: {exc}") from None
