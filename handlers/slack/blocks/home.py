"""The App Home tab: the viewer's open incidents, every open incident by severity, a Declare
button and links to the manager pages.

Each of the viewer's incidents is a section (its severity's colour, key, status, title, channel
and the viewer's roles); all open incidents are lines grouped under their severity, most severe
first and newest first within one. What does not fit (:data:`MINE_SHOWN`, the core's own cut of
all open incidents, Slack's 100 blocks of a view) is counted in an "N more on the incidents page"
line. Titles come from alerts and people: each is escaped and cut (:func:`clean`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.incidents.home import HomeIncident, HomeView
from handlers.slack.blocks.card import _link
from handlers.slack.blocks.compose import Block, button, context, plain, section
from handlers.slack.blocks.limits import CONTEXT_MAX, HOME_MAX_BLOCKS, SECTION_MAX
from handlers.slack.blocks.text import clean, person, truncate

# Action and callback ids: the listeners register these.
HOME_DECLARE = "home.declare"
HOME_CALLBACK = "warroom.home"

MINE_SHOWN = 20
TITLE_SHOWN = 150
_RANK_EMOJI = ("🔴", "🟠", "🟡")
_CHANNEL = re.compile(r"C[A-Z0-9]{2,20}")  # a Slack channel id (not the local transcript's)
EMPTY_MINE = (
    "_You hold no role on an open incident and are in none of their channels._ "
    "Incidents you are staffed on show up here."
)


def _emoji(item: HomeIncident) -> str:
    return _RANK_EMOJI[item.rank] if item.rank < len(_RANK_EMOJI) else "🔵"


def _when(at: datetime) -> str:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    shown = at.astimezone(UTC).isoformat(timespec="minutes")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{shown}>"


def _key(item: HomeIncident) -> str:
    key = clean(item.key, 40)
    link = _link(item.page_url, key) if item.page_url else None
    return f"*{link or key}*"


def _line(item: HomeIncident) -> str:
    """``🔴 *INC-0042* investigating · Checkout fails · #channel``."""
    parts = [
        f"{_emoji(item)} {_key(item)} {clean(item.status, 40)}",
        clean(item.title, TITLE_SHOWN) or "_untitled_",
    ]
    if item.channel_id and _CHANNEL.fullmatch(item.channel_id):
        parts.append(f"<#{item.channel_id}>")
    return " · ".join(parts)


def _severity(item: HomeIncident) -> str:
    parts = (clean(item.severity, 40), clean(item.severity_label, 60))
    return " · ".join(dict.fromkeys(p for p in parts if p)) or "—"


def _mine(item: HomeIncident) -> Block:
    details = [f"*{_severity(item)}*", f"commander {person(item.commander)}"]
    if item.roles:
        details.append("you: " + ", ".join(clean(r.replace("_", " "), 40) for r in item.roles))
    details.append(f"declared {_when(item.declared_at)}")
    return section(truncate(f"{_line(item)}\n{' · '.join(details)}", SECTION_MAX))


def _more(count: int, incidents_url: str | None, what: str = "") -> Block:
    link = _link(incidents_url, "the incidents page") if incidents_url else None
    return context(f"{count} more{what} on {link or 'the incidents page'}")


def _by_severity(items: Sequence[HomeIncident], levels: Sequence[str]) -> list[tuple[str, int]]:
    """(line, incidents on it) under a heading per severity: the scheme's order, then others."""
    groups: dict[str, list[HomeIncident]] = {}
    for item in sorted(items, key=lambda i: i.rank):
        groups.setdefault(item.severity, []).append(item)
    order = [name for name in levels if name in groups] + [n for n in groups if n not in levels]
    lines: list[tuple[str, int]] = []
    for name in order:
        group = groups[name]
        lines.append((f"*{_emoji(group[0])} {_severity(group[0])}* ({len(group)})", 0))
        lines += [(_line(item), 1) for item in group]
    return lines


def _sections(lines: list[tuple[str, int]], room: int) -> tuple[list[Block], int]:
    """At most ``room`` sections of whole lines; and how many incidents they show."""
    blocks: list[Block] = []
    shown = 0
    current: list[str] = []
    count = 0
    for line, items in lines:
        if current and len("\n".join([*current, line])) > SECTION_MAX:
            if len(blocks) == room:
                break
            blocks.append(section("\n".join(current)))
            shown += count
            current, count = [], 0
        current.append(truncate(line, SECTION_MAX))
        count += items
    if current and len(blocks) < room:
        blocks.append(section("\n".join(current)))
        shown += count
    return blocks, shown


def home_view(home: HomeView) -> Block:
    """The Home tab for ``home.user``, at most :data:`HOME_MAX_BLOCKS` blocks."""
    incidents_url = next((url for _, url in home.pages if url.endswith("/incidents")), None)
    top: list[Block] = [
        {"type": "header", "text": plain("Incidents")},
        {
            "type": "actions",
            "block_id": "home.actions",
            "elements": [button("Declare incident", HOME_DECLARE, "home", style="primary")],
        },
    ]
    links = [link for label, url in home.pages if (link := _link(url, label)) is not None]
    if links:
        top.append(context(truncate("🌐 " + " · ".join(links), CONTEXT_MAX)))

    mine: list[Block] = [section(f"*Your open incidents* ({len(home.mine)})")]
    if home.mine:
        mine += [_mine(item) for item in home.mine[:MINE_SHOWN]]
        if len(home.mine) > MINE_SHOWN:
            mine.append(_more(len(home.mine) - MINE_SHOWN, incidents_url, " of yours"))
    else:
        mine.append(section(EMPTY_MINE))

    every: list[Block] = [
        {"type": "divider"},
        section(f"*All open incidents* ({home.open_total})"),
    ]
    if not home.open:
        every.append(section("_No open incidents._"))
    room = HOME_MAX_BLOCKS - len(top) - len(mine) - len(every) - 1  # one left for "N more"
    listed, shown = _sections(_by_severity(home.open, home.levels), room)
    every += listed
    if home.open_total > shown:
        every.append(_more(home.open_total - shown, incidents_url))
    return {"type": "home", "callback_id": HOME_CALLBACK, "blocks": [*top, *mine, *every]}
