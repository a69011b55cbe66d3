"""Silences in Slack: a silence's preview with its Create buttons.

A Create button's action id is ``silence.confirm.<duration>`` and its value the plan's token
(:meth:`~bot.incidents.silences.SilencePlan.token`): what was previewed is what is created.
The card's Silence and Unsilence buttons are in :mod:`~handlers.slack.blocks.card`.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import UserError
from bot.incidents.silences import DURATIONS, UNTIL_RESOLVED, SilencePlan
from handlers.slack.blocks.compose import Block, button, context, mrkdwn, plain, section
from handlers.slack.blocks.limits import BUTTON_VALUE_MAX, SECTION_MAX
from handlers.slack.blocks.text import clean, escape, truncate

SILENCE_CONFIRM = "silence.confirm"

_LABEL = {"1h": "Silence 1 h", "4h": "Silence 4 h", UNTIL_RESOLVED: "Until resolved"}


def silence_preview_text(plan: SilencePlan) -> str:
    """The preview in plain mrkdwn (also the notification text)."""
    matchers = "\n".join(f"• `{clean(str(m), 300)}`" for m in plan.matchers)
    return truncate(
        f"*Silence {clean(plan.key, 40)}'s alerts* on Alertmanager `{clean(plan.target, 60)}`\n"
        f"Matchers (the alert group's common labels):\n{matchers}\n"
        f"Comment: {escape(plan.full_comment())}",
        SECTION_MAX,
    )


def silence_preview_blocks(plan: SilencePlan, durations: Sequence[str] = ()) -> list[Block]:
    """The preview and a Create button per duration (the plan's own when none are given)."""
    buttons = []
    for duration in durations or (plan.duration,):
        chosen = plan.with_duration(duration)
        token = chosen.token()
        if len(token) > BUTTON_VALUE_MAX:
            raise UserError(
                "Too many matchers to confirm from Slack: name fewer, e.g. "
                '`/incident silence 1h alertname="HighLatency"`.'
            )
        confirm = {
            "title": plain("Create this silence?"),
            "text": mrkdwn("Alertmanager stops notifying for the matching alerts until it ends."),
            "confirm": plain("Silence"),
            "deny": plain("Cancel"),
        }
        label = _LABEL.get(duration, duration) if durations else f"Create silence ({duration})"
        buttons.append(
            button(label, f"{SILENCE_CONFIRM}.{duration}", token, style="danger", confirm=confirm)
        )
    ends = ", ".join(d for d in (durations or (plan.duration,)) if d in DURATIONS)
    return [
        section(silence_preview_text(plan)),
        context(f"Ends after: {ends}. `until-resolved` is expired when the incident resolves."),
        {"type": "actions", "elements": buttons},
    ]
