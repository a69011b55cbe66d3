"""Slack Block Kit for incidents: pure functions from views and text to blocks, no I/O.

Every string that came from an alert or a person goes through :func:`escape` and is cut to
Slack's limit by :func:`truncate`. Mrkdwn is sent ``verbatim``, so Slack does not turn a bare
``@channel`` or a channel name into a mention; the only ``<…>`` in the output are the ones
built here (``<@U…>``, ``<!date^…>``, ``<https://…|label>``).

Text typed in Slack arrives already escaped (``&amp;``) and the core keeps it as sent (see
:mod:`bot.commands`), while alert text arrives raw: :func:`escape` therefore leaves ``&amp;``,
``&lt;`` and ``&gt;`` alone rather than escaping them twice, and modal inputs are prefilled
unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bot.cards import MAX_ALERTS_SHOWN, AlertLine, CardView
from bot.errors import InvalidSeverity
from bot.models import TimelineEvent
from bot.severity import SeverityLevel, SeverityScheme

Block: TypeAlias = dict[str, Any]

# Action and callback ids: the listeners register these.
ACK = "incident.ack"
RUN_DIAGNOSTICS = "incident.diagnostics"
POST_UPDATE = "incident.update"
RESOLVE = "incident.resolve"
REOPEN = "incident.reopen"
SNOOZE = "incident.snooze"
UPDATE_MODAL = "incident.update_modal"
RESOLVE_MODAL = "incident.resolve_modal"
CARD_ACTIONS = "incident.card_actions"
REMINDER_ACTIONS = "incident.reminder_actions"

# Slack's limits (docs.slack.dev Block Kit reference).
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
CONFIRM_TITLE_MAX = 100  # text 300, confirm and deny 30: ours, and shorter
CONTEXT_MAX = 2000
OPTION_TEXT_MAX = 75
INITIAL_VALUE_MAX = 3000
MODAL_TITLE_MAX = 24
MODAL_BUTTON_MAX = 24
METADATA_MAX = 3000  # callback_id, block_id and action_id (255) are all ours, and short

URL_MAX = 1000  # a longer link is dropped: cutting it would break it
STATUSES = ("investigating", "identified", "mitigating", "monitoring")
NEXT_UPDATE_MINUTES = (15, 30, 60, 120, 240)
SNOOZE_MAX_MINUTES = 24 * 60
POSTMORTEM = "schedule"  # the value of the resolve modal's checkbox

_BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt);)")
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}$")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")  # real ids are ~11 characters; longer is text
_LABEL = re.compile(r"^([A-Za-z](?:[A-Za-z -]{0,28}[A-Za-z])?):(?=\s|$)")
_DURATION = re.compile(r"\s*([0-9]{1,5})\s*(m|mins?|minutes?|h|hrs?|hours?)?\s*", re.IGNORECASE)
_RANK_EMOJI = ("🔴", "🟠", "🟡")
_LABEL_RANK = {"critical": 0, "high": 1, "medium": 2}  # the labels of both built-in schemes
_ALERT_ICON = {"firing": "🔥", "resolved": "✅"}
_LINK_ORDER = ("generator", "runbook", "dashboard", "panel", "pagerduty")


# -- text ---------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` for Slack; ``&amp;``, ``&lt;``, ``&gt;`` already there stay."""
    return _BARE_AMP.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never in the middle of ``&amp;``."""
    if limit < 1:
        raise ValueError(f"truncate() needs a limit of at least 1, not {limit}")
    if len(text) <= limit:
        return text
    return _CUT_ENTITY.sub("", text[: limit - 1]) + "…"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _clean(text: str | None, limit: int) -> str:
    """One line of outside text, escaped and cut to ``limit``."""
    return truncate(escape(" ".join((text or "").split())), limit)


def _person(who: str | None, *, nobody: str = "_unassigned_") -> str:
    if who is None or not who.strip():
        return nobody
    if _SLACK_USER.fullmatch(who.strip()):
        return f"<@{who.strip()}>"
    return _clean(who, 200)


def _when(at: datetime, tz: ZoneInfo | None) -> str:
    """A Slack date token: each reader sees their own time zone; ``tz`` sets the fallback."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    fallback = at.astimezone(tz or UTC).isoformat(timespec="minutes")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


def _url(url: str) -> str | None:
    """An http(s) URL made safe to put in ``<url|label>``, or None."""
    url = url.strip()
    if any(c.isspace() or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    safe = parts.scheme.lower() + url[len(parts.scheme) :]
    safe = safe.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    safe = _BARE_AMP.sub("&amp;", safe)
    return safe if len(safe) <= URL_MAX else None


def _link(url: str, label: str) -> str | None:
    safe = _url(url)
    if safe is None:
        return None
    text = _clean(label, 80).replace("|", "∣") or "link"
    return f"<{safe}|{text}>"


def _split_long(line: str, limit: int) -> list[str]:
    pieces = []
    while len(line) > limit:
        partial = _CUT_ENTITY.search(line, 0, limit)
        cut = partial.start() if partial else limit
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line]


def _pack(lines: Iterable[str], limit: int = SECTION_MAX) -> list[str]:
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


# -- composition objects ------------------------------------------------------------------


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _fields(fields: list[str]) -> Block:
    return {"type": "section", "fields": [_mrkdwn(truncate(f, FIELD_MAX)) for f in fields]}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(text) for text in texts]}


def _sections(lines: Iterable[str]) -> list[Block]:
    chunks = _pack(lines)
    if len(chunks) > MAX_BLOCKS:
        note = "\n_…the rest is too long to show here._"
        chunks = chunks[:MAX_BLOCKS]
        chunks[-1] = truncate(chunks[-1], SECTION_MAX - len(note)) + note
    return [_section(chunk) for chunk in chunks]


def _button(text: str, action_id: str, value: str, **extra: Any) -> Block:
    """A button; ``extra`` may add ``style`` and ``confirm``."""
    return {
        "type": "button",
        "text": _plain(truncate(text, BUTTON_TEXT_MAX)),
        "action_id": action_id,
        "value": truncate(value, BUTTON_VALUE_MAX),
        **extra,
    }


def _option(value: str, text: str) -> Block:
    return {"text": _plain(truncate(text, OPTION_TEXT_MAX)), "value": value}


# -- the incident card --------------------------------------------------------------------


def _emoji(view: CardView, scheme: SeverityScheme | None) -> str:
    if not view.is_open:
        return "✅"
    rank = _LABEL_RANK.get(view.severity_label.strip().lower())
    if scheme is not None:
        level = _level(view, scheme)
        rank = None if level is None else scheme.levels.index(level)
    return _RANK_EMOJI[rank] if rank is not None and rank < len(_RANK_EMOJI) else "🔵"


def _level(view: CardView, scheme: SeverityScheme | None) -> SeverityLevel | None:
    if scheme is None:
        return None
    try:
        return scheme.get(view.severity)
    except InvalidSeverity:
        return None


def _severity(view: CardView) -> str:
    name, label = _clean(view.severity, 200), _clean(view.severity_label, 200)
    return " · ".join(dict.fromkeys(part for part in (name, label) if part)) or "—"


def _role_label(role: str) -> str:
    return _clean(role.replace("_", " "), 50).capitalize() or "Role"


def _card_fields(view: CardView, tz: ZoneInfo | None) -> list[str]:
    fields = [
        f"*Severity*\n{_severity(view)}",
        f"*Status*\n{_clean(view.status, 200).capitalize() or '—'}",
        f"*Commander*\n{_person(view.commander)}",
    ]
    if view.service and view.service.strip():
        fields.append(f"*Service*\n{_clean(view.service, 200)}")
    started = f"Declared {_when(view.declared_at, tz)}"
    if view.detected_at is not None:
        started = f"Detected {_when(view.detected_at, tz)}\n{started}"
    fields.append(f"*Started*\n{started}")
    ack = [f"by {_person(view.acknowledged_by)}"] if view.acknowledged_by else []
    if view.acknowledged_at is not None:
        ack.append(_when(view.acknowledged_at, tz))
    fields.append(f"*Acknowledged*\n{' · '.join(ack) or '_not yet_'}")
    if view.resolved_at is not None:
        fields.append(f"*Resolved*\n{_when(view.resolved_at, tz)}")
    return fields


def _alert_line(alert: AlertLine) -> str:
    name = _clean(alert.name, 150) or _clean(alert.summary, 150) or "unnamed alert"
    line = f"{_ALERT_ICON.get(alert.status, '⚪')} *{name}*"
    if alert.summary.strip() and alert.summary.strip() != alert.name.strip():
        line += f" — {_clean(alert.summary, 300)}"
    if alert.count > 1:
        line += f" ×{alert.count}"
    names = sorted(
        alert.links,
        key=lambda n: (n not in _LINK_ORDER, _LINK_ORDER.index(n) if n in _LINK_ORDER else 0),
    )
    links = [link for n in names if (link := _link(alert.links[n], n)) is not None][:2]
    return " · ".join([line, *links])


def _alert_blocks(view: CardView) -> list[Block]:
    total = view.alerts_total_notifications
    head = (
        f"*Alerts:* {view.alerts_firing} firing · {view.alerts_resolved} resolved · "
        f"{total} notification{'' if total == 1 else 's'}"
    )
    if not (view.alerts or view.alerts_firing or view.alerts_resolved):
        head = "*Alerts:* none"
    lines = [head, *(_alert_line(alert) for alert in view.alerts[:MAX_ALERTS_SHOWN])]
    if len(view.alerts) > MAX_ALERTS_SHOWN:
        lines.append(f"_…and {len(view.alerts) - MAX_ALERTS_SHOWN} more_")
    return [_section(chunk) for chunk in _pack(lines)]


def _card_links(view: CardView) -> list[str]:
    items: list[str] = []
    if view.runbook is not None:
        title, url = view.runbook
        items.append("📖 " + (_link(url, title or "Runbook") or _clean(title, 200) or "Runbook"))
    if view.page_url and (page := _link(view.page_url, "Incident page")) is not None:
        items.append(f"🌐 {page}")
    shown = {view.runbook[1] if view.runbook else None, view.page_url}
    for name, url in view.links.items():
        if url not in shown and (link := _link(url, name.capitalize())) is not None:
            shown.add(url)
            items.append(link)
    return items[:10]


def _card_actions(view: CardView) -> Block:
    key = view.key
    if not view.is_open:
        buttons = [_button("Reopen", REOPEN, key)]
    else:
        confirm = {
            "title": _plain(truncate(f"Resolve {_clean(key, 40)}?", CONFIRM_TITLE_MAX)),
            "text": _plain("This closes the incident and posts the resolution message."),
            "confirm": _plain("Resolve"),
            "deny": _plain("Keep it open"),
            "style": "danger",
        }
        buttons = [_button("Acknowledge", ACK, key, style="primary")]
        if view.acknowledged_at is not None:
            buttons = []
        buttons += [
            _button("Run diagnostics", RUN_DIAGNOSTICS, key),
            _button("Post update", POST_UPDATE, key),
            _button("Resolve", RESOLVE, key, style="danger", confirm=confirm),
        ]
    return {"type": "actions", "block_id": CARD_ACTIONS, "elements": buttons}


def card_blocks(
    view: CardView, *, tz: ZoneInfo | None = None, scheme: SeverityScheme | None = None
) -> list[Block]:
    """The pinned incident card.

    The header's colour follows the severity's rank in ``scheme``; without one, its label
    (Critical, High, Medium, as in both built-in schemes). ``tz`` sets the fallback text of
    dates, which Slack otherwise shows in each reader's own time zone.
    """
    title = _clean(view.title, HEADER_MAX)
    header = truncate(
        " · ".join(filter(None, (f"{_emoji(view, scheme)} {_clean(view.key, 40)}", title))),
        HEADER_MAX,
    )
    blocks: list[Block] = [{"type": "header", "text": _plain(header)}]
    blocks.append(_fields(_card_fields(view, tz)))
    if reason := _clean(view.severity_reason, CONTEXT_MAX - 5):
        blocks.append(_context(f"why: {reason}"))
    roles = [
        f"*{_role_label(r)}*\n{_person(who)}" for r, who in view.roles.items() if r != "commander"
    ]
    if len(roles) > MAX_FIELDS:
        roles[MAX_FIELDS - 1 :] = [f"*More roles*\n+{len(roles) - MAX_FIELDS + 1} more"]
    if roles:
        blocks.append(_fields(roles))
    impact = truncate(escape(view.impact.strip()), SECTION_MAX - 12) or "_not yet known_"
    blocks.append(_section(f"*Impact*\n{impact}"))
    blocks += _alert_blocks(view)
    if links := _card_links(view):
        blocks.append(_context(*links))
    blocks.append(_card_actions(view))
    return blocks


def card_text(view: CardView, *, scheme: SeverityScheme | None = None) -> str:
    """The card in one line: the notification text and the fallback of ``chat.postMessage``."""
    parts = (
        f"{_emoji(view, scheme)} {_clean(view.key, 40)}",
        _severity(view),
        _clean(view.status, 40).capitalize(),
        _clean(view.title, 300),
    )
    return truncate(" · ".join(part for part in parts if part), 300)


# -- messages ----------------------------------------------------------------------------


def message_blocks(text: str) -> list[Block]:
    """A rendered message template, ``Label:`` at a line's start in bold; ``[]`` if blank."""
    return _sections(_LABEL.sub(r"*\1:*", escape(line)) for line in text.strip().splitlines())


def help_blocks(text: str) -> list[Block]:
    """The help text of :func:`bot.commands.help_text` (mrkdwn with `<placeholders>`)."""
    return _sections(escape(line) for line in text.strip().splitlines())


def error_blocks(message: str, usage: str | None = None) -> list[Block]:
    """A :class:`~bot.errors.UserError` message and, if given, how to write the command."""
    blocks = [
        _section(truncate("⚠️ " + (escape(message.strip()) or "That did not work."), SECTION_MAX))
    ]
    if usage and usage.strip():
        shown = truncate(escape(usage.strip()), SECTION_MAX - 20)
        blocks.append(_section(f"*Usage:* {shown if '`' in shown else f'`{shown}`'}"))
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
    if (level := _level(view, scheme)) is not None:
        interval = int(level.update_interval.total_seconds() // 60)
        every = f" ({_clean(level.name, 20)} updates every {_minutes(interval)})"
    text = f"⏰ *{_clean(view.key, 40)}* has had no update for {_minutes(overdue_minutes)}{every}."
    if view.commander and view.commander.strip():
        text += f"\n{_person(view.commander)}, please post an update or snooze this reminder."
    else:
        text += "\nNo commander is assigned: whoever is on it, please post an update."
    blocks = [_section(text)]
    if title := _clean(view.title, CONTEXT_MAX):
        blocks.append(_context(title))
    buttons = [
        _button("Post update", POST_UPDATE, view.key, style="primary"),
        _button(f"Snooze {_minutes(snooze_minutes)}", SNOOZE, f"{view.key}|{snooze_minutes}"),
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
        text = _clean(event.text, 1000)
        who = _person(event.actor, nobody="someone")
        line = f"`{at:%H:%M}` *{_clean(event.kind, 40) or 'event'}* · {who}"
        lines.append(f"{line}: {text}" if text else line)
    return lines


def timeline_blocks(
    key: str, events: Sequence[TimelineEvent], *, tz: ZoneInfo | None = None
) -> list[Block]:
    """The timeline, oldest first; when it would pass 50 blocks the oldest events are left out."""
    ordered = sorted(events, key=lambda event: event.at)
    count = len(ordered)
    blocks = [
        _section(f"*Timeline of {_clean(key, 40)}* · {count} event{'' if count == 1 else 's'}")
    ]
    if not ordered:
        return [*blocks, _context("No events yet.")]
    shown = ordered
    chunks = _pack(_timeline_lines(shown, tz))
    while len(chunks) > MAX_BLOCKS - 2:
        shown = shown[1:]
        chunks = _pack(_timeline_lines(shown, tz))
    if left_out := count - len(shown):
        blocks.append(_context(f"{left_out} earlier event{'' if left_out == 1 else 's'} left out."))
    return blocks + [_section(chunk) for chunk in chunks]


# -- modals -------------------------------------------------------------------------------


def _modal(callback_id: str, view: CardView, verb: str, blocks: list[Block]) -> Block:
    heading = f"*{_clean(view.key, 40)}* · {_clean(view.title, CONTEXT_MAX)}"
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(truncate(f"{verb} {view.key}", MODAL_TITLE_MAX)),
        "submit": _plain(truncate(verb, MODAL_BUTTON_MAX)),
        "close": _plain("Cancel"),
        "private_metadata": truncate(view.key, METADATA_MAX),
        "blocks": [_context(truncate(heading, CONTEXT_MAX)), *blocks],
    }


def _input(name: str, label: str, element: Block, *, optional: bool = True) -> Block:
    element = {**element, "action_id": name}
    return {
        "type": "input",
        "block_id": name,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }


def _text(
    name: str,
    label: str,
    hint: str,
    initial: str = "",
    *,
    multiline: bool = True,
    optional: bool = True,
) -> Block:
    """A text input prefilled with ``initial``, unescaped: the person edits what they will see."""
    element: Block = {
        "type": "plain_text_input",
        "multiline": multiline,
        "max_length": INITIAL_VALUE_MAX,
        "placeholder": _plain(hint),
    }
    if value := truncate(_unescape(initial).strip(), INITIAL_VALUE_MAX):
        element["initial_value"] = value
    return _input(name, label, element, optional=optional)


def _select(name: str, label: str, options: list[Block], initial: str | None) -> Block:
    element: Block = {"type": "static_select", "options": options, "placeholder": _plain("Choose")}
    for option in options:
        if option["value"] == initial:
            element["initial_option"] = option
    return _input(name, label, element, optional=name != "status")


def _next_update_choice(text: str | None) -> str | None:
    """The offered interval nearest ``15``, ``30 min``, ``1 h``…; None if not a duration."""
    match = _DURATION.fullmatch(text or "")
    if match is None:
        return None
    minutes = int(match.group(1)) * (60 if (match.group(2) or "m")[0] in "hH" else 1)
    return str(min(NEXT_UPDATE_MINUTES, key=lambda choice: (abs(choice - minutes), choice)))


def update_modal(view: CardView, *, prefill: Mapping[str, str]) -> Block:
    """The runbook's Update template as a form: status, progress, impact, ETA, next update.

    ``prefill`` may hold ``status``, ``progress``, ``impact``, ``eta`` and ``next_update``
    (minutes, or ``30 min``, ``1 h``: the nearest offered interval is chosen).
    """
    status = prefill.get("status", view.status).strip().lower()
    blocks = [
        _select("status", "Status", [_option(s, s.capitalize()) for s in STATUSES], status),
        _text(
            "progress", "Progress", "What's been done", prefill.get("progress", ""), optional=False
        ),
        _text("impact", "Current impact", "Updated impact", prefill.get("impact") or view.impact),
        _text("eta", "ETA", "Resolution estimate", prefill.get("eta", ""), multiline=False),
        _select(
            "next_update",
            "Next update in",
            [_option(str(m), _minutes(m)) for m in NEXT_UPDATE_MINUTES],
            _next_update_choice(prefill.get("next_update")),
        ),
    ]
    return _modal(UPDATE_MODAL, view, "Update", blocks)


def resolve_modal(view: CardView, *, summary: str = "", postmortem: bool = True) -> Block:
    """The runbook's Resolution template as a form; the post-mortem box starts ``postmortem``."""
    box = _option(POSTMORTEM, "Schedule a post-mortem")
    checkbox: Block = {"type": "checkboxes", "options": [box]}
    if postmortem:
        checkbox["initial_options"] = [box]
    blocks = [
        _text("summary", "Summary", "What happened", summary, multiline=False, optional=False),
        _text("root_cause", "Root cause", "Brief description"),
        _text("resolution", "Resolution", "What fixed it"),
        _input("postmortem", "Follow-up", checkbox),
    ]
    return _modal(RESOLVE_MODAL, view, "Resolve", blocks)


def _action(state_values: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    block = state_values.get(name)
    action = block.get(name) if isinstance(block, Mapping) else None
    return action if isinstance(action, Mapping) else {}


def _typed(state_values: Mapping[str, Any], name: str) -> str:
    value = _action(state_values, name).get("value")
    return value.strip() if isinstance(value, str) else ""


def _chosen(state_values: Mapping[str, Any], name: str, allowed: Sequence[str]) -> str:
    option = _action(state_values, name).get("selected_option")
    value = option.get("value") if isinstance(option, Mapping) else None
    if value is not None and value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of the options offered")
    return value or ""


def read_update_submission(state_values: Mapping[str, Any]) -> dict[str, str]:
    """Slack's ``view.state.values`` of the update modal, by field; an empty field is ``""``.

    Keys: ``status``, ``progress``, ``impact``, ``eta``, ``next_update`` (minutes, ``"30"``).
    """
    values = {
        "status": _chosen(state_values, "status", STATUSES),
        "progress": _typed(state_values, "progress"),
        "impact": _typed(state_values, "impact"),
        "eta": _typed(state_values, "eta"),
        "next_update": _chosen(state_values, "next_update", [str(m) for m in NEXT_UPDATE_MINUTES]),
    }
    if not values["status"]:
        raise ValueError("the update form came back without a status")
    return values


def read_resolve_submission(state_values: Mapping[str, Any]) -> dict[str, str | bool]:
    """Slack's ``view.state.values`` of the resolve modal: the three texts, and ``postmortem``."""
    selected = _action(state_values, "postmortem").get("selected_options")
    return {
        "summary": _typed(state_values, "summary"),
        "root_cause": _typed(state_values, "root_cause"),
        "resolution": _typed(state_values, "resolution"),
        "postmortem": any(
            isinstance(o, Mapping) and o.get("value") == POSTMORTEM for o in selected or ()
        ),
    }


# -- runbooks -----------------------------------------------------------------------------------

RUNBOOK_DIAG = "runbook.diag"
RUNBOOK_CONFIRM = "runbook.confirm"
RUNBOOK_APPROVE = "runbook.approve"


def runbook_blocks(text: str, key: str, steps: Sequence[tuple[str, str, str]]) -> list[Block]:
    """Matched runbooks with a button per diagnostic: ``steps`` is (runbook, step, title)."""
    blocks = help_blocks(text)
    buttons = [
        _button(f"Run {title}", f"{RUNBOOK_DIAG}.{n}", f"{key}|{book}|{step}")
        for n, (book, step, title) in enumerate(steps[:25])
    ]
    for start in range(0, len(buttons), 5):
        if len(blocks) >= MAX_BLOCKS:
            break
        blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return blocks


def pending_blocks(text: str, run_id: int, *, needs_approval: bool) -> list[Block]:
    """A previewed mitigation: Confirm (danger, with Slack's confirm dialog) and Approve."""
    blocks = help_blocks(text)[: MAX_BLOCKS - 1]
    confirm = {
        "title": _plain("Run this mitigation?"),
        "text": _mrkdwn("It changes a production system. The preview above shows what it touches."),
        "confirm": _plain("Run it"),
        "deny": _plain("Cancel"),
        "style": "danger",
    }
    buttons = [_button("Confirm", RUNBOOK_CONFIRM, str(run_id), style="danger", confirm=confirm)]
    if needs_approval:
        buttons.insert(0, _button("Approve", RUNBOOK_APPROVE, str(run_id), style="primary"))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks
