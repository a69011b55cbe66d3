"""Block Kit's small pieces shared by every surface: text objects, sections, context, buttons.

Mrkdwn is sent ``verbatim``, so Slack does not turn a bare ``@channel`` or a channel name into
a mention; the text given is sent as is (escaping and cutting are the caller's, see
:mod:`handlers.slack.blocks.text`), except a button's label and value, cut to Slack's limits.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from handlers.slack.blocks.limits import BUTTON_TEXT_MAX, BUTTON_VALUE_MAX
from handlers.slack.blocks.text import truncate

Block: TypeAlias = dict[str, Any]


def plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text) for text in texts]}


def button(text: str, action_id: str, value: str, **extra: Any) -> Block:
    """A button; ``extra`` may add ``style`` and ``confirm``."""
    return {
        "type": "button",
        "text": plain(truncate(text, BUTTON_TEXT_MAX)),
        "action_id": action_id,
        "value": truncate(value, BUTTON_VALUE_MAX),
        **extra,
    }
