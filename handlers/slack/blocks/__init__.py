"""Slack Block Kit for incidents: pure functions from views and text to blocks, no I/O.

Every string that came from an alert or a person goes through :func:`escape` (text the core
composed around it through :func:`core_text`, a message's top-level ``text`` through
:func:`fallback`) and is cut to Slack's limit by :func:`truncate`. Mrkdwn is sent
``verbatim``, so Slack does not turn a bare ``@channel`` or a channel name into a mention;
the only ``<…>`` in the output are the ones built here (``<@U…>``, ``<!date^…>``,
``<https://…|label>``) and the core's bare channel references ``<#C…>``.

Text typed in Slack arrives already escaped (``&amp;``) and the core keeps it as sent (see
:mod:`bot.commands.parse`), while alert text arrives raw: :func:`escape` therefore leaves ``&amp;``,
``&lt;`` and ``&gt;`` alone rather than escaping them twice, and modal inputs are prefilled
unescaped.

The modules, each depending only on those above it:

    limits    Slack's Block Kit limits (HEADER_MAX, SECTION_MAX, MAX_BLOCKS…)
    text      escape, core_text, fallback, truncate, clean, person, format_minutes, pack
    compose   Block and the pieces: plain, mrkdwn, section, context, button
    card      the incident card (card_blocks, card_text), its suggested next steps and its
              action ids
    messages  message, help, error, reminder and timeline blocks; parse_snooze
    modals    the declare, update and resolve modals and reading their submissions
    home      the App Home tab: the viewer's incidents, all open ones, the Declare button
    runbooks  diagnostic buttons; a pending mitigation's Approve / Confirm / Cancel
    silences  a silence's preview and its Create buttons
"""

from __future__ import annotations

from handlers.slack.blocks.card import (
    ACK,
    CARD_ACTIONS,
    NEXT_STEP,
    NEXT_STEPS,
    POST_UPDATE,
    REOPEN,
    RESOLVE,
    RESOLVE_NOW,
    RUN_DIAGNOSTICS,
    SILENCE,
    UNSILENCE,
    URL_MAX,
    card_blocks,
    card_text,
)
from handlers.slack.blocks.compose import Block
from handlers.slack.blocks.home import HOME_CALLBACK, HOME_DECLARE, home_view
from handlers.slack.blocks.limits import (
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    CONFIRM_TITLE_MAX,
    CONTEXT_MAX,
    FIELD_MAX,
    HEADER_MAX,
    HOME_MAX_BLOCKS,
    INITIAL_VALUE_MAX,
    MAX_BLOCKS,
    MAX_FIELDS,
    METADATA_MAX,
    MODAL_BUTTON_MAX,
    MODAL_TITLE_MAX,
    OPTION_TEXT_MAX,
    SECTION_MAX,
)
from handlers.slack.blocks.messages import (
    REMINDER_ACTIONS,
    SNOOZE,
    SNOOZE_MAX_MINUTES,
    error_blocks,
    help_blocks,
    message_blocks,
    parse_snooze,
    reminder_blocks,
    timeline_blocks,
)
from handlers.slack.blocks.modals import (
    DECLARE_MODAL,
    NEXT_UPDATE_MINUTES,
    POSTMORTEM,
    RESOLVE_MODAL,
    STATUSES,
    UPDATE_MODAL,
    declare_modal,
    read_declare_submission,
    read_resolve_submission,
    read_update_submission,
    resolve_modal,
    update_modal,
)
from handlers.slack.blocks.runbooks import (
    RUNBOOK_APPROVE,
    RUNBOOK_CANCEL,
    RUNBOOK_CONFIRM,
    RUNBOOK_DIAG,
    approved_text,
    pending_blocks,
    pending_fallback,
    runbook_blocks,
)
from handlers.slack.blocks.silences import (
    SILENCE_CONFIRM,
    silence_preview_blocks,
    silence_preview_text,
)
from handlers.slack.blocks.text import core_text, escape, fallback, reply_text, truncate

__all__ = [
    "ACK",
    "BUTTON_TEXT_MAX",
    "BUTTON_VALUE_MAX",
    "CARD_ACTIONS",
    "CONFIRM_TITLE_MAX",
    "CONTEXT_MAX",
    "DECLARE_MODAL",
    "FIELD_MAX",
    "HEADER_MAX",
    "HOME_CALLBACK",
    "HOME_DECLARE",
    "HOME_MAX_BLOCKS",
    "INITIAL_VALUE_MAX",
    "MAX_BLOCKS",
    "MAX_FIELDS",
    "METADATA_MAX",
    "MODAL_BUTTON_MAX",
    "MODAL_TITLE_MAX",
    "NEXT_STEP",
    "NEXT_STEPS",
    "NEXT_UPDATE_MINUTES",
    "OPTION_TEXT_MAX",
    "POSTMORTEM",
    "POST_UPDATE",
    "REMINDER_ACTIONS",
    "REOPEN",
    "RESOLVE",
    "RESOLVE_MODAL",
    "RESOLVE_NOW",
    "RUNBOOK_APPROVE",
    "RUNBOOK_CANCEL",
    "RUNBOOK_CONFIRM",
    "RUNBOOK_DIAG",
    "RUN_DIAGNOSTICS",
    "SECTION_MAX",
    "SILENCE",
    "SILENCE_CONFIRM",
    "SNOOZE",
    "SNOOZE_MAX_MINUTES",
    "STATUSES",
    "UNSILENCE",
    "UPDATE_MODAL",
    "URL_MAX",
    "Block",
    "approved_text",
    "card_blocks",
    "card_text",
    "core_text",
    "declare_modal",
    "error_blocks",
    "escape",
    "fallback",
    "help_blocks",
    "home_view",
    "message_blocks",
    "parse_snooze",
    "pending_blocks",
    "pending_fallback",
    "read_declare_submission",
    "read_resolve_submission",
    "read_update_submission",
    "reminder_blocks",
    "reply_text",
    "resolve_modal",
    "runbook_blocks",
    "silence_preview_blocks",
    "silence_preview_text",
    "timeline_blocks",
    "truncate",
    "update_modal",
]
