"""The pinned incident card: header, fields, roles, impact, alerts, follow-ups, links, buttons.

The header's emoji follows the severity (its rank in the scheme, or its label); dates are
Slack date tokens, shown in each reader's own time zone; links are made safe to put in
``<url|label>`` or left out. The buttons' action ids are the ones the listeners register.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from bot.errors import InvalidSeverity
from bot.incidents.card import MAX_ALERTS_SHOWN, AlertLine, CardView
from bot.incidents.followups import FollowUpLine
from bot.incidents.severity import SeverityLevel, SeverityScheme
from handlers.slack.blocks.compose import Block, button, context, mrkdwn, plain, section
from handlers.slack.blocks.limits import (
    CONFIRM_TITLE_MAX,
    CONTEXT_MAX,
    FIELD_MAX,
    HEADER_MAX,
    MAX_FIELDS,
    SECTION_MAX,
)
from handlers.slack.blocks.statuspage import statuspage_buttons
from handlers.slack.blocks.text import BARE_AMP, clean, escape, pack, person, truncate

# Action and callback ids: the listeners register these.
ACK = "incident.ack"
RUN_DIAGNOSTICS = "incident.diagnostics"
POST_UPDATE = "incident.update"
RESOLVE = "incident.resolve"
REOPEN = "incident.reopen"
SILENCE = "incident.silence"
UNSILENCE = "incident.unsilence"
CARD_ACTIONS = "incident.card_actions"
RESOLVE_NOW = "incident.resolve_now"
NEXT_STEP = "runbook.suggest"  # a suggested mitigation: ``runbook.suggest.<n>``
NEXT_STEPS = "incident.next_steps"  # the block of those buttons

URL_MAX = 1000  # a longer link is dropped: cutting it would break it
SHOWN_URL_MAX = 60  # the address shown as the text of a link an alert named

_RANK_EMOJI = ("🔴", "🟠", "🟡")
_LABEL_RANK = {"critical": 0, "high": 1, "medium": 2}  # the labels of both built-in schemes
_ALERT_ICON = {"firing": "🔥", "resolved": "✅"}
_LINK_ORDER = ("generator", "runbook", "dashboard", "panel", "pagerduty")
# A follow-up line's parts, cut so that five lines and their head fit one section (3000).
FOLLOW_UP_TEXT_MAX = 100
FOLLOW_UP_OWNER_MAX = 50
TICKET_URL_MAX = 300  # a longer ticket link shows the key alone
TICKET_KEY_MAX = 30
#: Mrkdwn formatting marks where Slack would read them, shown as look-alikes in follow-ups.
_MARKS = re.compile(r"[*~`]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LOOK_ALIKE = {"*": "∗", "~": "∼", "`": "ˋ", "_": "ˍ"}


def _when(at: datetime, tz: ZoneInfo | None) -> str:
    """A Slack date token: each reader sees their own time zone; ``tz`` sets the fallback."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    fallback = at.astimezone(tz or UTC).isoformat(timespec="minutes")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


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
    safe = BARE_AMP.sub("&amp;", safe)
    return safe if len(safe) <= URL_MAX else None


def _link(url: str, label: str, *, ours: bool = True) -> str | None:
    """``<url|label>``; a label from an alert (not ``ours``) is shown beside its real address.

    An alert may name a link anything, ``https://grafana.internal`` included: its link text is
    then the address itself (cut to :data:`SHOWN_URL_MAX`), so a label cannot disguise it.
    """
    safe = _url(url)
    if safe is None:
        return None
    text = clean(label, 80).replace("|", "∣") or "link"
    if ours:
        return f"<{safe}|{text}>"
    shown = truncate(safe.split("://", 1)[1], SHOWN_URL_MAX)
    return f"{text}: <{safe}|{shown}>"


def _fields(fields: list[str]) -> Block:
    return {"type": "section", "fields": [mrkdwn(truncate(f, FIELD_MAX)) for f in fields]}


def _emoji(view: CardView, scheme: SeverityScheme | None) -> str:
    if not view.is_open:
        return "✅"
    rank = _LABEL_RANK.get(view.severity_label.strip().lower())
    if scheme is not None:
        level = severity_level(view, scheme)
        rank = None if level is None else scheme.levels.index(level)
    return _RANK_EMOJI[rank] if rank is not None and rank < len(_RANK_EMOJI) else "🔵"


def severity_level(view: CardView, scheme: SeverityScheme | None) -> SeverityLevel | None:
    """The view's severity in ``scheme``; None without a scheme or if it has no such level."""
    if scheme is None:
        return None
    try:
        return scheme.get(view.severity)
    except InvalidSeverity:
        return None


def _severity(view: CardView) -> str:
    name, label = clean(view.severity, 200), clean(view.severity_label, 200)
    return " · ".join(dict.fromkeys(part for part in (name, label) if part)) or "—"


def _role_label(role: str) -> str:
    return clean(role.replace("_", " "), 50).capitalize() or "Role"


def _card_fields(view: CardView, tz: ZoneInfo | None) -> list[str]:
    fields = [
        f"*Severity*\n{_severity(view)}",
        f"*Status*\n{clean(view.status, 200).capitalize() or '—'}",
        f"*Commander*\n{person(view.commander)}",
    ]
    if view.service and view.service.strip():
        fields.append(f"*Service*\n{clean(view.service, 200)}")
    started = f"Declared {_when(view.declared_at, tz)}"
    if view.detected_at is not None:
        started = f"Detected {_when(view.detected_at, tz)}\n{started}"
    fields.append(f"*Started*\n{started}")
    ack = [f"by {person(view.acknowledged_by)}"] if view.acknowledged_by else []
    if view.acknowledged_at is not None:
        ack.append(_when(view.acknowledged_at, tz))
    fields.append(f"*Acknowledged*\n{' · '.join(ack) or '_not yet_'}")
    if view.resolved_at is not None:
        fields.append(f"*Resolved*\n{_when(view.resolved_at, tz)}")
    return fields


def _alert_line(alert: AlertLine) -> str:
    name = clean(alert.name, 150) or clean(alert.summary, 150) or "unnamed alert"
    line = f"{_ALERT_ICON.get(alert.status, '⚪')} *{name}*"
    if alert.summary.strip() and alert.summary.strip() != alert.name.strip():
        line += f" — {clean(alert.summary, 300)}"
    if alert.count > 1:
        line += f" ×{alert.count}"
    names = sorted(
        alert.links,
        key=lambda n: (n not in _LINK_ORDER, _LINK_ORDER.index(n) if n in _LINK_ORDER else 0),
    )
    links = [
        link for n in names if (link := _link(alert.links[n], n, ours=n in _LINK_ORDER)) is not None
    ][:2]
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
    return [section(chunk) for chunk in pack(lines)]


def _unformatted(text: str) -> str:
    """Escaped text whose ``*bold*``, ``_italic_``, ``~strike~`` and ``code`` marks stay text."""
    return _MARKS.sub(lambda m: _LOOK_ALIKE[m.group()], text)


def _follow_up_line(item: FollowUpLine) -> str:
    """``⬜ #3 text · owner · <url|OPS-12>``: at most about 500 characters."""
    text = _unformatted(clean(item.text, FOLLOW_UP_TEXT_MAX)) or "—"
    parts = [f"{'✅' if item.done else '⬜'} #{item.id} {text}"]
    if item.owner and item.owner.strip():
        owner = person(item.owner)  # a Slack user id is mentioned, other names are text
        if not owner.startswith("<@"):
            owner = _unformatted(clean(item.owner, FOLLOW_UP_OWNER_MAX))
        parts.append(owner)
    key = clean(item.ticket, TICKET_KEY_MAX).replace("|", "∣") if item.ticket else ""
    url = _url(item.url) if item.url else None
    if url is not None and len(url) <= TICKET_URL_MAX:
        parts.append(f"🎫 <{url}|{key or 'ticket'}>")
    elif key:
        parts.append(f"🎫 {_unformatted(key)}")
    return " · ".join(parts)


def _follow_up_blocks(view: CardView) -> list[Block]:
    """``Follow-ups: 2 open · 1 done``, the first few (open first, newest first), what else."""
    tally = view.follow_ups
    if not tally.total:
        return []
    lines = [f"*Follow-ups:* {tally.open} open · {tally.done} done"]
    lines += [_follow_up_line(item) for item in tally.shown]
    if tally.more:
        lines.append(f"_…and {tally.more} more_")
    return [section(chunk) for chunk in pack(lines)]


def _card_links(view: CardView) -> list[str]:
    items: list[str] = []
    if view.runbook is not None:
        title, url = view.runbook
        items.append("📖 " + (_link(url, title or "Runbook") or clean(title, 200) or "Runbook"))
    if view.page_url and (page := _link(view.page_url, "Incident page")) is not None:
        items.append(f"🌐 {page}")
    for status in view.status_pages:  # the public status incident (bot.incidents.statuspage)
        label = f"Status page {status.target} ({status.phase or 'open'})"
        if status.url and (public := _link(status.url, label)) is not None:
            items.append(f"📣 {public}")
    shown = {view.runbook[1] if view.runbook else None, view.page_url}
    for name, url in view.links.items():
        ours = name in _LINK_ORDER
        if url not in shown and (link := _link(url, name.capitalize(), ours=ours)) is not None:
            shown.add(url)
            items.append(link)
    return items[:10]


def _silence_lines(view: CardView, tz: ZoneInfo | None) -> list[str]:
    lines = []
    for silence in view.silences:
        until = " (until resolved)" if silence.until_resolved else ""
        lines.append(
            f"🔕 *Silenced* until {_when(silence.ends, tz)}{until} · "
            f"`{clean(silence.silence_id, 64)}` on `{clean(silence.target, 40)}` "
            f"by {person(silence.created_by)}"
        )
    return lines


def _unsilence_button(view: CardView) -> Block:
    confirm = {
        "title": plain("Expire the silences?"),
        "text": plain("Alertmanager notifies again for the incident's alerts."),
        "confirm": plain("Unsilence"),
        "deny": plain("Keep them"),
    }
    return button("Unsilence", UNSILENCE, view.key, confirm=confirm)


def _card_actions(view: CardView) -> Block:
    key = view.key
    if not view.is_open:
        buttons = [button("Reopen", REOPEN, key)]
        if view.silences:
            buttons.append(_unsilence_button(view))
    else:
        confirm = {
            "title": plain(truncate(f"Resolve {clean(key, 40)}?", CONFIRM_TITLE_MAX)),
            "text": plain("This closes the incident and posts the resolution message."),
            "confirm": plain("Resolve"),
            "deny": plain("Keep it open"),
            "style": "danger",
        }
        buttons = [button("Acknowledge", ACK, key, style="primary")]
        if view.acknowledged_at is not None:
            buttons = []
        buttons += [
            button("Run diagnostics", RUN_DIAGNOSTICS, key),
            button("Post update", POST_UPDATE, key),
            button("Resolve", RESOLVE, key, style="danger", confirm=confirm),
        ]
        if view.resolve_ready:  # quiet after monitoring: the prefilled form, no dialog first
            buttons.insert(0, button("Resolve now", RESOLVE_NOW, key, style="primary"))
        if view.silenceable:
            buttons.append(button("Silence", SILENCE, key))
        if view.silences:
            buttons.append(_unsilence_button(view))
    buttons += statuspage_buttons(view)
    return {"type": "actions", "block_id": CARD_ACTIONS, "elements": buttons}


def _next_step_blocks(view: CardView) -> list[Block]:
    """The mitigations the latest diagnostics suggest, each with its reason and its button."""
    if not view.is_open or not view.next_steps:
        return []
    steps = view.next_steps[:5]
    lines = ["*Next step* (suggested by the latest diagnostics)"]
    lines += [f"• *{clean(s.title, 150)}* — {clean(s.because, 300)}" for s in steps]
    buttons = [
        button(f"Run {s.title}", f"{NEXT_STEP}.{n}", f"{view.key}|{s.runbook}|{s.step}")
        for n, s in enumerate(steps)
    ]
    return [
        *(section(chunk) for chunk in pack(lines)),
        {"type": "actions", "block_id": NEXT_STEPS, "elements": buttons},
    ]


def card_blocks(
    view: CardView, *, tz: ZoneInfo | None = None, scheme: SeverityScheme | None = None
) -> list[Block]:
    """The pinned incident card.

    The header's colour follows the severity's rank in ``scheme``; without one, its label
    (Critical, High, Medium, as in both built-in schemes). ``tz`` sets the fallback text of
    dates, which Slack otherwise shows in each reader's own time zone.
    """
    title = clean(view.title, HEADER_MAX)
    header = truncate(
        " · ".join(filter(None, (f"{_emoji(view, scheme)} {clean(view.key, 40)}", title))),
        HEADER_MAX,
    )
    blocks: list[Block] = [{"type": "header", "text": plain(header)}]
    blocks.append(_fields(_card_fields(view, tz)))
    if reason := clean(view.severity_reason, CONTEXT_MAX - 5):
        blocks.append(context(f"why: {reason}"))
    roles = [
        f"*{_role_label(r)}*\n{person(who)}" for r, who in view.roles.items() if r != "commander"
    ]
    if len(roles) > MAX_FIELDS:
        roles[MAX_FIELDS - 1 :] = [f"*More roles*\n+{len(roles) - MAX_FIELDS + 1} more"]
    if roles:
        blocks.append(_fields(roles))
    impact = truncate(escape(view.impact.strip()), SECTION_MAX - 12) or "_not yet known_"
    blocks.append(section(f"*Impact*\n{impact}"))
    blocks += _alert_blocks(view)
    if silenced := _silence_lines(view, tz):
        blocks += [section(chunk) for chunk in pack(silenced)]
    blocks += _follow_up_blocks(view)
    if links := _card_links(view):
        blocks.append(context(*links))
    blocks += _next_step_blocks(view)
    if view.is_open and view.resolve_ready:
        blocks.append(
            context("✅ Every alert has resolved and it has been quiet: resolve it when ready.")
        )
    blocks.append(_card_actions(view))
    return blocks


def card_text(view: CardView, *, scheme: SeverityScheme | None = None) -> str:
    """The card in one line: the notification text and the fallback of ``chat.postMessage``."""
    parts = (
        f"{_emoji(view, scheme)} {clean(view.key, 40)}",
        _severity(view),
        clean(view.status, 40).capitalize(),
        clean(view.title, 300),
    )
    return truncate(" · ".join(part for part in parts if part), 300)
