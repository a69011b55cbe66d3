"""Secrets out of every text a step produces, before it is stored, posted or logged.

Two layers: the exact secret values warroom knows (the passwords and tokens of the
configured targets, read from the environment) are replaced wherever they appear, and
patterns catch the rest — a password in a URL or a connection string, ``password=…``,
``Authorization: …``, bearer tokens, ``PASSWORD '…'`` in SQL, ``AUTH …`` in Redis, and
well-known token shapes (Slack, GitHub, AWS, JWT).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host → scheme://user:********@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)"), rf"\1{MASK}\3"),
    # Authorization: Bearer xyz / Proxy-Authorization: Basic xyz (header lines, any casing)
    (
        re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:(?:bearer|basic|token)\s+)?\S+"),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    # key=value and key: value for the usual secret names (conninfo, logs, JSON-ish text)
    (
        re.compile(
            r"""(?ix)
            \b((?:password|passwd|pwd|secret|client_secret|token|api[_-]?key|apikey
                 |access[_-]?key|private[_-]?key|auth[_-]?token|sslpassword)
               ["']?\s*[:=]\s*)
            (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;&}'"]+)
            """
        ),
        rf"\1{MASK}",
    ),
    # SQL: ALTER ROLE x PASSWORD 'secret' / ENCRYPTED PASSWORD 'secret'
    (re.compile(r"(?i)\b(password\s+)'(?:[^']|'')*'"), rf"\1'{MASK}'"),
    # Redis: AUTH password / AUTH user password / HELLO 3 AUTH user password
    (re.compile(r"(?m)((?:^|\bHELLO\s+\d\s+)(?:AUTH|auth)\s+)\S+(?:\s+\S+)?"), rf"\1{MASK}"),
    # Token shapes that are secrets wherever they appear
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
]


class Redactor:
    """Replaces known secret values and secret-looking text with ``********``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a DSN is masked whole before the password inside it.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it (lists, dicts, nested) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with ``secrets`` and secret-looking text masked."""
    return Redactor(secrets).text(text)
