"""The status page in Slack: a message's preview with its Publish button.

The preview shows exactly what the public will read: the status incident's name, the message
(rendered from the runbook's template), the phase, the impact and the components, all escaped.
The Publish button's action id is :data:`STATUSPAGE_CONFIRM` and its value the plan's token
(:meth:`~bot.incidents.statuspage.StatusPlan.token`): the core renders the text again from it
and publishes only if it is still what was shown. The card's *Status page* and *Resolve status
page* buttons are :data:`STATUSPAGE` and :data:`STATUSPAGE_RESOLVE`.
"""

from __future__ import annotations

from bot.incidents.card import CardView
from bot.incidents.statuspage import StatusPlan
from handlers.slack.blocks.compose import Block, button, context, mrkdwn, plain, section
from handlers.slack.blocks.limits import SECTION_MAX
from handlers.slack.blocks.text import clean, escape, truncate

STATUSPAGE = "incident.statuspage"
STATUSPAGE_RESOLVE = "incident.statuspage_resolve"
STATUSPAGE_CONFIRM = "statuspage.confirm"

_DOING = {
    "open": "Open a status incident",
    "update": "Post an update",
    "resolve": "Resolve the status incident",
}
_BUTTON = {"open": "Publish", "update": "Publish update", "resolve": "Publish resolution"}
_FENCE = "```"


def _status(word: str) -> str:
    return clean(word.replace("_", " "), 40)


def statuspage_preview_text(plan: StatusPlan) -> str:
    """The head of the preview in mrkdwn (also the notification text)."""
    head = f"*{_DOING[plan.action]} on the status page `{clean(plan.target, 40)}`*"
    if plan.became_update:
        head += "\nA status incident is open for this incident already: this posts an update."
    return truncate(
        f"{head}\n*Name:* {clean(plan.name, 255)}\n"
        f"*Phase:* {_status(plan.phase)} · *Impact:* {_status(plan.impact)}",
        SECTION_MAX,
    )


def _body(text: str) -> str:
    """The message as the public reads it, in a code block (escaped, no fence inside)."""
    inner = escape(text.strip()).replace(_FENCE, "ʼʼʼ")
    room = SECTION_MAX - 2 * len(_FENCE) - 60
    if len(inner) > room:
        more = len(inner) - room
        inner = truncate(inner, room) + f"\n({more} more characters are published)"
    return f"{_FENCE}{inner}{_FENCE}"


def _components(plan: StatusPlan) -> str:
    if not plan.components:
        return "Components: none (no `components` mapping for this incident's service)."
    items = ", ".join(
        f"`{clean(cid, 40)}` → {_status(status)}" for cid, status in plan.components.items()
    )
    return truncate(f"Components: {items}", 2000)


def statuspage_preview_blocks(plan: StatusPlan) -> list[Block]:
    """The preview, the public text, the components, and the Publish button."""
    confirm = {
        "title": plain("Publish to the status page?"),
        "text": mrkdwn("The public sees it at once and the page's subscribers are notified."),
        "confirm": plain("Publish"),
        "deny": plain("Cancel"),
    }
    publish = button(
        _BUTTON[plan.action], STATUSPAGE_CONFIRM, plan.token(), style="primary", confirm=confirm
    )
    return [
        section(statuspage_preview_text(plan)),
        section(_body(plan.body)),
        context(_components(plan)),
        context("Only you see this preview; nothing is published until you press the button."),
        {"type": "actions", "elements": [publish]},
    ]


def statuspage_buttons(view: CardView) -> list[Block]:
    """The card's status page buttons: publish while the incident is open; once it is resolved
    while a status incident still shows it open, offer the resolution (a preview first)."""
    if not view.status_page_ready:
        return []
    if view.is_open:
        return [button("Status page", STATUSPAGE, view.key)]
    if any(not s.resolved for s in view.status_pages):
        return [button("Resolve status page", STATUSPAGE_RESOLVE, view.key, style="primary")]
    return []
