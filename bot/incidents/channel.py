"""Incident channel names that obey Slack's rules.

Slack channel names are lowercase letters, digits, ``-`` and ``_``, at most 80
characters. The default pattern gives ``inc-20261126-0042-db-connection-exhaustion``.
"""

from __future__ import annotations

import re
import string
import unicodedata

from bot.store.models import Incident

MAX_LENGTH = 80
FIELDS = ("key", "number", "date", "slug", "severity", "service")
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")


def check_pattern(pattern: str) -> None:
    """Raise ValueError unless ``pattern`` uses only known fields and includes the number."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as error:
        raise ValueError(f"bad channel pattern {pattern!r}: {error}") from None
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in channel pattern; use {', '.join(FIELDS)}")
    if "number" not in names and "key" not in names:
        raise ValueError("the channel pattern must include {number} or {key}: names must differ")


def slug(text: str, limit: int = MAX_LENGTH) -> str:
    """``"DB: connection exhaustion!"`` → ``"db-connection-exhaustion"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_ALLOWED.sub("-", ascii_text.lower()).strip("-_")[:limit].strip("-_")


def channel_name(pattern: str, incident: Incident, *, digits: int = 4) -> str:
    """The channel's name, cut to Slack's 80 characters by shortening the slug first."""
    fields = {
        "key": incident.key.lower(),
        "number": f"{incident.number:0{digits}d}",
        "date": incident.declared_at.strftime("%Y%m%d"),
        "severity": incident.severity.lower(),
        "service": slug(incident.service or "", 30) or "none",
        "slug": "",
    }
    fixed = slug(pattern.format(**fields), MAX_LENGTH)
    room = max(0, MAX_LENGTH - len(fixed))
    fields["slug"] = slug(incident.title, room)
    name = slug(pattern.format(**fields), MAX_LENGTH)
    return re.sub(r"-{2,}", "-", name) or f"inc-{fields['number']}"


def with_suffix(name: str, attempt: int) -> str:
    """``name`` made unique for the ``attempt``-th retry after ``name_taken``."""
    suffix = f"-{attempt + 1}"
    return name[: MAX_LENGTH - len(suffix)].rstrip("-_") + suffix
