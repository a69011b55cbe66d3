"""Mrkdwn text: outside text escaped and cut to a limit, people, durations, lines packed.

This module is the one place where text becomes Slack mrkdwn. :func:`escape` turns ``&``, ``<``
and ``>`` into entities, so nothing from an alert, a form or a person can become a control
sequence (``<!channel>``, ``<!here>``, ``<!everyone>``, ``<@U…>``, ``<!subteam^S…>``,
``<#C…>``) or a disguised link: a Slack-formatted link ``<https://x|click here>`` is shown as
``click here (https://x)``, its real address in plain sight. It leaves ``&amp;``, ``&lt;`` and
``&gt;`` alone (text typed in Slack arrives already escaped) and :func:`truncate` never cuts one
in half; :func:`clean` does both to one line of alert or user text. :func:`core_text` is for
text the core composed around such input (templates, announcements, step results):
:func:`fallback` the same for a message's top-level ``text``. :func:`person` mentions a
Slack user id (from a role assignment or an actor, never from text) and shows any other name
as text; :func:`format_minutes` writes a duration; :func:`pack` groups lines into as few
section texts as keep them whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from handlers.slack.blocks.limits import SECTION_MAX

BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
#: A Slack-formatted link with a label, ``<https://x|click here>``: shown as label (address).
_LABELLED_LINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]{0,20}:[^<>|\s]*)\|([^<>]*)>")
#: A bare channel reference after escaping, ``&lt;#C0123ABC&gt;`` (see :func:`core_text`).
_ESCAPED_CHANNEL = re.compile(r"&lt;#(C[A-Z0-9]{2,20})&gt;")
FALLBACK_MAX = 3000
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")  # real ids are ~11 characters; longer is text


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` for Slack; ``&amp;``, ``&lt;``, ``&gt;`` already there stay.

    A labelled link is first written out as ``label (address)``, so its text cannot hide
    where it goes.
    """
    text = _LABELLED_LINK.sub(_unlink, text)
    return BARE_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _unlink(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2).strip()
    return f"{label} ({url})" if label and label != url else url


def core_text(text: str) -> str:
    """Text the core composed, escaped whole (it carries alert and user text).

    The one sequence kept is a bare channel reference ``<#C…>``, which the core writes to point
    at an incident's channel: it can neither notify anybody nor disguise a link (Slack shows
    the channel's own name). Mentions and links are never kept: the Slack builders make those
    from data (:func:`person`, the card's links), not from text.
    """
    return _ESCAPED_CHANNEL.sub(r"<#\1>", escape(text))


def reply_text(text: str, mentions: tuple[str, ...] = ()) -> str:
    """A command's reply, escaped whole, with the mentions the core itself made kept.

    ``mentions`` are the user ids the core wrote as ``<@U…>`` (the actor, the person given a
    role); anything else that looks like a mention or a link came with alert or user text and
    stays escaped.
    """
    out = core_text(text)
    for user in mentions:
        out = out.replace(f"&lt;@{user}&gt;", f"<@{user}>")
    return out


def fallback(text: str) -> str:
    """A message's top-level ``text`` (notifications, screen readers), escaped and cut."""
    return truncate(core_text(text), FALLBACK_MAX)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never in the middle of ``&amp;``."""
    if limit < 1:
        raise ValueError(f"truncate() needs a limit of at least 1, not {limit}")
    if len(text) <= limit:
        return text
    return _CUT_ENTITY.sub("", text[: limit - 1]) + "…"


def clean(text: str | None, limit: int) -> str:
    """One line of outside text, escaped and cut to ``limit``."""
    return truncate(escape(" ".join((text or "").split())), limit)


def person(who: str | None, *, nobody: str = "_unassigned_") -> str:
    if who is None or not who.strip():
        return nobody
    if _SLACK_USER.fullmatch(who.strip()):
        return f"<@{who.strip()}>"
    return clean(who, 200)


def format_minutes(minutes: int) -> str:
    """``65`` → ``1 h 5 min``; under an hour, ``45 min``."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


def _split_long(line: str, limit: int) -> list[str]:
    pieces = []
    while len(line) > limit:
        partial = _CUT_ENTITY.search(line, 0, limit)
        cut = partial.start() if partial else limit
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line]


def pack(lines: Iterable[str], limit: int = SECTION_MAX) -> list[str]:
    """Lines grouped into as few texts of at most ``limit`` as keep them whole."""
    chunks: list[str] = []
    current: list[str] = []
    size = -1
    for line in lines:
        for piece in _split_long(line.rstrip(), limit):
            if current and size + 1 + len(piece) > limit:
                chunks.append("\n".join(current))
                current, size = [], -1
            current.append(piece)
            size += 1 + len(piece)
    if current:
        chunks.append("\n".join(current))
    return [chunk.strip("\n") for chunk in chunks if chunk.strip()]
