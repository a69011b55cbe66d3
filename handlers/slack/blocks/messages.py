"""Messages in the channel: rendered templates, help, errors, the reminder and the timeline.

Long text is packed into as few sections as keep its lines whole, and whatever would pass
Slack's 50 blocks is left out with a note (the timeline leaves out its oldest events). The
reminder carries Post update and Snooze; a Snooze button's value reads back with
:func:`parse_snooze`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC
from zoneinfo import ZoneInfo

from bot.incidents.card import CardView
from bot.incidents.severity import SeverityScheme
from bot.store.models import TimelineEvent
from handlers.slack.blocks.card import POST_UPDATE, severity_level
from handlers.slack.blocks.compose import Block, button, context, section
from handlers.slack.blocks.limits import CONTEXT_MAX, MAX_BLOCKS, SECTION_MAX
from handlers.slack.blocks.text import (
    clean,
    core_text,
    escape,
    format_minutes,
    pack,
    person,
    truncate,
)

# Action and callback ids: the listeners register these.
SNOOZE = "incident.snooze"
REMINDER_ACTIONS = "incident.reminder_actions"

SNOOZE_MAX_MINUTES = 24 * 60

_LABEL = re.compile(r"^([A-Za-z](?:[A-Za-z -]{0,28}[A-Za-z])?):(?=\s|$)")


def _sections(lines: Iterable[str]) -> list[Block]:
    chunks = pack(lines)
    if len(chunks) > MAX_BLOCKS:
        note = "\n_…the rest is too long to show here._"
        chunks = chunks[:MAX_BLOCKS]
        chunks[-1] = truncate(chunks[-1], SECTION_MAX - len(note)) + note
    return [section(chunk) for chunk in chunks]


def message_blocks(text: str) -> list[Block]:
    """Text the core composed (a rendered template, an announcement, a step's result).

    Escaped whole (see :func:`~handlers.slack.blocks.text.core_text`), ``Label:`` at a line's
    start in bold; ``[]`` if blank.
    """
    return _sections(_LABEL.sub(r"*\1:*", core_text(line)) for line in text.strip().splitlines())


def help_blocks(text: str) -> list[Block]:
    """The help text of :func:`bot.commands.parse.help_text` (mrkdwn with `<placeholders>`)."""
    return _sections(escape(line) for line in text.strip().splitlines())


def error_blocks(message: str, usage: str | None = None) -> list[Block]:
    """A :class:`~bot.errors.UserError` message and, if given, how to write the command."""
    blocks = [
        section(truncate("⚠️ " + (escape(message.strip()) or "That did not work."), SECTION_MAX))
    ]
    if usage and usage.strip():
        shown = truncate(escape(usage.strip()), SECTION_MAX - 20)
        blocks.append(section(f"*Usage:* {shown if '`' in shown else f'`{shown}`'}"))
    return blocks


def reminder_blocks(
    view: CardView,
    *,
    overdue_minutes: int,
    scheme: SeverityScheme | None = None,
    snooze_minutes: int = 30,
) -> list[Block]:
    """The reminder "INC-0042 has had no update for 47 min", with Post update and Snooze.

    ``overdue_minutes`` is the time since the last update; ``scheme`` adds how often this
    severity should be updated.
    """
    if overdue_minutes < 0:
        raise ValueError(f"overdue_minutes must not be negative, not {overdue_minutes}")
    if not 1 <= snooze_minutes <= SNOOZE_MAX_MINUTES:
        raise ValueError(f"snooze_minutes must be 1 to {SNOOZE_MAX_MINUTES}, not {snooze_minutes}")
    every = ""
    if (level := severity_level(view, scheme)) is not None:
        interval = int(level.update_interval.total_seconds() // 60)
        every = f" ({clean(level.name, 20)} updates every {format_minutes(interval)})"
    text = (
        f"⏰ *{clean(view.key, 40)}* has had no update for "
        f"{format_minutes(overdue_minutes)}{every}."
    )
    if view.commander and view.commander.strip():
        text += f"\n{person(view.commander)}, please post an update or snooze this reminder."
    else:
        text += "\nNo commander is assigned: whoever is on it, please post an update."
    blocks = [section(text)]
    if title := clean(view.title, CONTEXT_MAX):
        blocks.append(context(title))
    buttons = [
        button("Post update", POST_UPDATE, view.key, style="primary"),
        button(f"Snooze {format_minutes(snooze_minutes)}", SNOOZE, f"{view.key}|{snooze_minutes}"),
    ]
    blocks.append({"type": "actions", "block_id": REMINDER_ACTIONS, "elements": buttons})
    return blocks


def parse_snooze(value: str) -> tuple[str, int]:
    """A Snooze button's value ``"INC-0042|30"`` → ``("INC-0042", 30)``."""
    key, sep, minutes = value.rpartition("|")
    if not sep or not key.strip() or not re.fullmatch(r"[0-9]{1,5}", minutes):
        raise ValueError(f"not a snooze value (key|minutes): {value!r}")
    if not 1 <= int(minutes) <= SNOOZE_MAX_MINUTES:
        raise ValueError(f"a snooze lasts 1 to {SNOOZE_MAX_MINUTES} minutes, not {minutes}")
    return key.strip(), int(minutes)


def _timeline_lines(events: Sequence[TimelineEvent], zone: ZoneInfo | None) -> list[str]:
    lines: list[str] = []
    day = None
    for event in events:
        at = (event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC)).astimezone(zone or UTC)
        if at.date() != day:
            day = at.date()
            lines.append(f"*{at:%a %d %b %Y}*")
        text = clean(event.text, 1000)
        who = person(event.actor, nobody="someone")
        line = f"`{at:%H:%M}` *{clean(event.kind, 40) or 'event'}* · {who}"
        lines.append(f"{line}: {text}" if text else line)
    return lines


def timeline_blocks(
    key: str, events: Sequence[TimelineEvent], *, tz: ZoneInfo | None = None
) -> list[Block]:
    """The timeline, oldest first; when it would pass 50 blocks the oldest events are left out."""
    ordered = sorted(events, key=lambda event: event.at)
    count = len(ordered)
    blocks = [section(f"*Timeline of {clean(key, 40)}* · {count} event{'' if count == 1 else 's'}")]
    if not ordered:
        return [*blocks, context("No events yet.")]
    shown = ordered
    chunks = pack(_timeline_lines(shown, tz))
    while len(chunks) > MAX_BLOCKS - 2:
        shown = shown[1:]
        chunks = pack(_timeline_lines(shown, tz))
    if left_out := count - len(shown):
        blocks.append(context(f"{left_out} earlier event{'' if left_out == 1 else 's'} left out."))
    return blocks + [section(chunk) for chunk in chunks]
