"""The draft as Markdown: the template's filters, and rendering ``postmortem.md.j2``.

Text that came from alerts and people goes through :func:`md_escape`, :func:`md_inline`,
:func:`md_fence` or :func:`md_link`, so it cannot change the document's shape;
:func:`register_filters` adds them (and ``duration``, :func:`format_duration`) to any
Jinja2 environment.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import jinja2

from bot.postmortem.model import PostMortem
from bot.templating import Templates

TEMPLATE = "postmortem.md.j2"


def format_duration(value: timedelta | None) -> str:
    """``timedelta(minutes=65)`` → ``1 h 5 min``; seconds show only under an hour; None → —."""
    if value is None:
        return "—"
    total = int(value.total_seconds())
    if total < 0:
        return "-" + format_duration(-value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")]
    if total < 3600:
        parts.append((seconds, "s"))
    shown = " ".join(f"{n} {unit}" for n, unit in parts if n)
    return shown or "0 s"


_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~])")
_LINE_START = re.compile(r"^(?:([-+=])|(\d{1,9})([.)])(?=\s|$))")


def md_escape(value: object) -> str:
    """Text from alerts and people, made inert in Markdown (and in the HTML it becomes).

    Emphasis, links, code, headings, tables and raw HTML are escaped; lines lose their
    leading blanks (no accidental code blocks) and list or quote markers are escaped.
    """
    if value is None:
        return ""
    text = _SPECIAL.sub(r"\\\1", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = (_LINE_START.sub(_escape_start, line.strip()) for line in text.splitlines())
    return "\n".join(lines)


def _escape_start(found: re.Match[str]) -> str:
    if found.group(1):
        return "\\" + found.group(1)  # a bullet, or a heading's underline
    return found.group(2) + "\\" + found.group(3)  # "1." or "1)" starting an ordered list


def md_inline(value: object) -> str:
    """:func:`md_escape` on one line: for table cells, headings and list items."""
    return " ".join(md_escape(value).split())


def md_fence(value: object, info: str = "text") -> str:
    """A fenced code block holding ``value`` verbatim (a fence longer than any inside)."""
    text = "" if value is None else str(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def md_link(url: object, label: object = None) -> str:
    """A link to an http(s) ``url``; any other scheme is shown as text, never linked."""
    target = "" if url is None else str(url).strip()
    shown = md_inline(label if label is not None else target)
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        return f"{shown} ({md_inline(target)})" if label is not None else shown
    for char, code in (("<", "%3C"), (">", "%3E"), ("|", "%7C"), (" ", "%20")):
        target = target.replace(char, code)
    return f"[{shown}](<{''.join(target.split())}>)"


def register_filters(env: jinja2.Environment) -> None:
    """Add ``md_escape``, ``md_inline``, ``md_fence``, ``md_link`` and ``duration``."""
    env.filters.update(
        md_escape=md_escape,
        md_inline=md_inline,
        md_fence=md_fence,
        md_link=md_link,
        duration=format_duration,
    )


def render_markdown(templates: Templates, pm: PostMortem) -> str:
    """The draft as Markdown, from ``postmortem.md.j2`` (the user's copy first)."""
    if "md_escape" not in templates.env.filters:
        register_filters(templates.env)
    return templates.render(TEMPLATE, pm=pm, zone=str(templates.zone)) + "\n"
