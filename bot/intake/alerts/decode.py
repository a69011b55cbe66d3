"""The one place a webhook body's bytes become a JSON value, with limits a hostile body cannot pass.

:func:`decode_body` returns the parsed value, or raises :class:`PayloadError` naming where
(the same dotted path the parsers use, ``$`` for the whole body) and why:

* bytes that are not JSON (``$``, with the decoder's line and column);
* containers nested deeper than :data:`MAX_DEPTH` (no sender nests more than a handful; a
  body of 100,000 ``[`` would otherwise exhaust the interpreter's recursion limit);
* an integer outside 64 bits (``-2**64 < n < 2**64``, signed or unsigned senders): one of
  more than :data:`MAX_INT_DIGITS` digits is never converted (Python refuses more than
  4,300 digits, and converting is quadratic below that);
* a number that is not finite (``1e400``) and ``NaN``/``Infinity``, which are not JSON;
* a string, or an object key, holding a NUL character (Postgres cannot store it) or a lone
  surrogate (``"\\ud800"``: not text, it cannot be written as UTF-8).

Everything a parser reads, and everything stored as the alert's ``raw``, has passed
these checks.  The checks are a single walk over the value (no recursion).

Most bodies take a faster way: ASCII bytes with no ``\\u`` escape and no run of 20
digits cannot break any rule above except by a number out of range, which msgspec's
decoder (C) refuses, or by their depth. Such a body is decoded by msgspec in a fraction of
the time, and walked for its depth only when it has more than :data:`MAX_DEPTH` brackets.
Anything msgspec refuses, or any other body, is decoded by the standard library's ``json``
and walked, which names the problem. Both ways give the same value for the same bytes
(``tests/intake/alerts/test_decode.py`` checks it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import msgspec

from bot.intake.alerts.errors import ROOT, PayloadError, child

MAX_DEPTH = 64
"""Containers (arrays, objects) nested at most this deep; the body itself is level 1."""

MAX_INT_DIGITS = 20
"""``2**64`` has 20 digits: a longer integer literal is out of range without converting it."""

_INT_RANGE = 2**64
_SHOW = 24
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)
_FAST = msgspec.json.Decoder()
# Every digit read as 0, to look for MAX_INT_DIGITS digits in a row (an integer perhaps
# outside 64 bits: ``2**64`` has 20 digits) with one scan in C, far quicker than a regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * MAX_INT_DIGITS


class _Rejected:
    """A number the decoder refused, kept in place so the walk can say where it was."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _literal(text: str) -> str:
    return text if len(text) <= _SHOW else f"{text[: _SHOW - 1]}…"


def _parse_int(text: str) -> object:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        return _Rejected(f"integer of {digits} digits is out of range (64 bits at most)")
    value = int(text)
    if not -_INT_RANGE < value < _INT_RANGE:
        return _Rejected(f"integer out of range (64 bits at most): {text}")
    return value


def _parse_float(text: str) -> object:
    value = float(text)
    if not math.isfinite(value):
        return _Rejected(f"number out of range: {_literal(text)}")
    return value


def _parse_constant(name: str) -> object:
    return _Rejected(f"{name} is not a JSON number")


def decode_body(raw: bytes) -> object:
    """``raw`` as a JSON value within the limits above, or a :class:`PayloadError`."""
    if _plain_text(raw) and _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZERO):
        try:
            value = _FAST.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # 1e400, say
            return careful_decode(raw)  # which says what is wrong
        # Its text and numbers are fine; only its depth is unknown with more brackets.
        if _shallow(raw) or _clean(value, 1):
            return value
    return careful_decode(raw)


def careful_decode(raw: bytes) -> object:
    """:func:`decode_body` by the standard library's decoder and a walk of the value."""
    encoding = json.detect_encoding(raw)
    try:
        text = raw.decode(encoding, "surrogatepass")
    except UnicodeDecodeError as error:
        raise PayloadError(ROOT, f"malformed JSON: not UTF-8 text: {error}") from None
    refused: list[_Rejected] = []

    def number(parse: Callable[[str], object]) -> Callable[[str], object]:
        def parsed(literal: str) -> object:
            value = parse(literal)
            if isinstance(value, _Rejected):
                refused.append(value)
            return value

        return parsed

    try:
        value = json.loads(
            text,
            parse_int=number(_parse_int),
            parse_float=number(_parse_float),
            parse_constant=number(_parse_constant),
        )
    except json.JSONDecodeError as error:
        raise PayloadError(ROOT, f"malformed JSON: {error}") from None
    except RecursionError:
        raise PayloadError(_too_deep_path(text), _deep_message()) from None
    if refused or encoding != "utf-8" or not (_plain_text(raw) and _shallow(raw)):
        check_value(value)
    return value


def _plain_text(raw: bytes) -> bool:
    """ASCII with no ``\\u`` escape: its strings hold no NUL (a raw one is not JSON) and
    no lone surrogate."""
    return raw.isascii() and b"\\u" not in raw


def _shallow(raw: bytes) -> bool:
    """At most :data:`MAX_DEPTH` brackets in all: nested no deeper than that."""
    return raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH


def _deep_message() -> str:
    return f"nested deeper than {MAX_DEPTH} levels"


# A node of the walk: (value, parent node, key in the parent, depth of value).
_Node: TypeAlias = "tuple[object, _Node | None, str | int | None, int]"


def _path(node: _Node | None) -> str:
    keys: list[str | int] = []
    while node is not None:
        _, parent, key, _ = node
        if key is not None:
            keys.append(key)
        node = parent
    path = ROOT
    for key in reversed(keys):
        path = child(path, key)
    return path


def check_value(value: object) -> None:
    """Raise :class:`PayloadError` for the first thing in ``value`` a body may not hold.

    ``value`` is what :func:`json.loads` can return (or a refused number); checked: the
    nesting depth, NUL characters and lone surrogates in strings and keys, numbers. A clean
    body (nearly all of them) passes a quick walk that keeps no paths; only a body it finds
    wrong is walked again, slowly, to name the first problem's path.
    """
    if not _clean(value, 1):
        _first_problem(value)
        raise PayloadError(ROOT, "the body holds a value warroom cannot take")  # not reached


def _text_ok(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean(item: object, depth: int) -> bool:
    """Whether ``item`` holds nothing :func:`_first_problem` would refuse (no paths kept)."""
    if isinstance(item, dict):
        if depth > MAX_DEPTH:
            return False
        for key, member in item.items():
            if not isinstance(key, str) or not _text_ok(key):
                return False
            if isinstance(member, str):
                if not _text_ok(member):
                    return False
            elif not _clean(member, depth + 1):
                return False
        return True
    if isinstance(item, list):
        if depth > MAX_DEPTH:
            return False
        for member in item:
            if isinstance(member, str):
                if not _text_ok(member):
                    return False
            elif not _clean(member, depth + 1):
                return False
        return True
    if isinstance(item, str):
        return _text_ok(item)
    if isinstance(item, _Rejected):
        return False
    return not (isinstance(item, float) and not math.isfinite(item))


def _first_problem(value: object) -> None:
    stack: list[_Node] = [(value, None, None, 1)]
    while stack:
        node = stack.pop()
        item, _, _, depth = node
        if isinstance(item, str):
            _check_text(item, node, "string")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise PayloadError(_path(node), _deep_message())
            if isinstance(item, dict):
                for key in item:
                    if isinstance(key, str):
                        _check_text(key, (key, node, key, depth + 1), "object key")
                children = [(v, node, k, depth + 1) for k, v in item.items()]
            else:
                children = [(v, node, i, depth + 1) for i, v in enumerate(item)]
            children.reverse()  # first member first: the first problem in the text is reported
            stack.extend(children)
        elif isinstance(item, _Rejected):
            raise PayloadError(_path(node), item.reason)
        elif isinstance(item, float) and not math.isfinite(item):
            raise PayloadError(_path(node), f"number out of range: {item}")


def _check_text(text: str, node: _Node, what: str) -> None:
    if "\x00" in text:
        where = text.index("\x00")
        raise PayloadError(_path(node), f"{what} holds a NUL character (\\u0000) at {where}")
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise PayloadError(
            _path(node),
            f"{what} holds a lone surrogate (\\u{code:04x}) at {error.start}: not text",
        ) from None


@dataclass(slots=True)
class _Frame:
    is_object: bool
    key: str | int | None
    wants_key: bool


def _too_deep_path(text: str) -> str:
    """The path of the first container nested deeper than :data:`MAX_DEPTH` in ``text``.

    Used when the decoder itself gave up (recursion), so it reads tokens only as far as
    that container.
    """
    frames: list[_Frame] = []
    for match in _TOKEN.finditer(text):
        mark = match.group()
        if mark in ("[", "{"):
            if len(frames) >= MAX_DEPTH:
                path = ROOT
                for frame in frames:
                    if frame.key is not None:
                        path = child(path, frame.key)
                return path
            is_object = mark == "{"
            frames.append(_Frame(is_object, None if is_object else 0, is_object))
        elif mark in ("]", "}"):
            if frames:
                frames.pop()
        elif not frames:
            continue
        elif mark == ",":
            top = frames[-1]
            if top.is_object:
                top.wants_key = True
            elif isinstance(top.key, int):
                top.key += 1
        elif mark == ":":
            frames[-1].wants_key = False
        elif frames[-1].is_object and frames[-1].wants_key:  # a string where a key goes
            try:
                frames[-1].key = json.loads(mark)
            except ValueError:
                frames[-1].key = mark.strip('"')
    return ROOT
