"""The declare, update and resolve modals (the runbook's Update and Resolution templates as forms).

:func:`declare_modal`, :func:`update_modal` and :func:`resolve_modal` build the views;
:func:`read_declare_submission`, :func:`read_update_submission` and
:func:`read_resolve_submission` read Slack's ``view.state.values`` back by field. Text
typed in Slack arrives escaped (``&amp;``) and is kept so: inputs are prefilled unescaped, so
the person edits what they will see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.incidents.card import CardView
from handlers.slack.blocks.compose import Block, context, plain
from handlers.slack.blocks.limits import (
    CONTEXT_MAX,
    INITIAL_VALUE_MAX,
    METADATA_MAX,
    MODAL_BUTTON_MAX,
    MODAL_TITLE_MAX,
    OPTION_TEXT_MAX,
)
from handlers.slack.blocks.text import clean, format_minutes, truncate

# Action and callback ids: the listeners register these.
UPDATE_MODAL = "incident.update_modal"
DECLARE_MODAL = "incident.declare_modal"
DECLARE_TITLE_MAX = 200  # bot.incidents.lifecycle.TITLE_MAX
RESOLVE_MODAL = "incident.resolve_modal"

STATUSES = ("investigating", "identified", "mitigating", "monitoring")
NEXT_UPDATE_MINUTES = (15, 30, 60, 120, 240)
POSTMORTEM = "schedule"  # the value of the resolve modal's checkbox

_DURATION = re.compile(r"\s*([0-9]{1,5})\s*(m|mins?|minutes?|h|hrs?|hours?)?\s*", re.IGNORECASE)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _option(value: str, text: str) -> Block:
    return {"text": plain(truncate(text, OPTION_TEXT_MAX)), "value": value}


def _modal(callback_id: str, view: CardView, verb: str, blocks: list[Block]) -> Block:
    heading = f"*{clean(view.key, 40)}* · {clean(view.title, CONTEXT_MAX)}"
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(truncate(f"{verb} {view.key}", MODAL_TITLE_MAX)),
        "submit": plain(truncate(verb, MODAL_BUTTON_MAX)),
        "close": plain("Cancel"),
        "private_metadata": truncate(view.key, METADATA_MAX),
        "blocks": [context(truncate(heading, CONTEXT_MAX)), *blocks],
    }


def _input(name: str, label: str, element: Block, *, optional: bool = True) -> Block:
    element = {**element, "action_id": name}
    return {
        "type": "input",
        "block_id": name,
        "label": plain(label),
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
        "placeholder": plain(hint),
    }
    if value := truncate(_unescape(initial).strip(), INITIAL_VALUE_MAX):
        element["initial_value"] = value
    return _input(name, label, element, optional=optional)


def _select(name: str, label: str, options: list[Block], initial: str | None) -> Block:
    element: Block = {"type": "static_select", "options": options, "placeholder": plain("Choose")}
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
            [_option(str(m), format_minutes(m)) for m in NEXT_UPDATE_MINUTES],
            _next_update_choice(prefill.get("next_update")),
        ),
    ]
    return _modal(UPDATE_MODAL, view, "Update", blocks)


def resolve_modal(
    view: CardView,
    *,
    summary: str = "",
    postmortem: bool = True,
    root_cause: str = "",
    resolution: str = "",
) -> Block:
    """The runbook's Resolution template as a form; the post-mortem box starts ``postmortem``.

    ``summary``, ``root_cause`` and ``resolution`` prefill the fields (the record's draft,
    :mod:`bot.postmortem.prefill`): the responder edits them and submits.
    """
    box = _option(POSTMORTEM, "Schedule a post-mortem")
    checkbox: Block = {"type": "checkboxes", "options": [box]}
    if postmortem:
        checkbox["initial_options"] = [box]
    blocks = [
        _text("summary", "Summary", "What happened", summary, multiline=False, optional=False),
        _text("root_cause", "Root cause", "Brief description", root_cause),
        _text("resolution", "Resolution", "What fixed it", resolution),
        _input("postmortem", "Follow-up", checkbox),
    ]
    return _modal(RESOLVE_MODAL, view, "Resolve", blocks)


def declare_modal(
    severities: Sequence[tuple[str, str]], default: str, *, commander: str | None = None
) -> Block:
    """The form ``/incident declare`` (without a title) and the Home tab's button open.

    ``severities`` are the scheme's ``(name, label)``, most severe first; ``default`` is
    chosen; ``commander`` (the person declaring) starts as the commander.
    """
    levels = [
        _option(name, " · ".join(p for p in (name, label) if p)) for name, label in severities
    ]
    severity: Block = {"type": "static_select", "options": levels, "placeholder": plain("Choose")}
    for option in levels:
        if option["value"] == default:
            severity["initial_option"] = option
    lead: Block = {"type": "users_select", "placeholder": plain("Who leads the response")}
    if commander:
        lead["initial_user"] = commander
    title = _text("title", "Title", "What is broken", multiline=False, optional=False)
    title["element"]["max_length"] = DECLARE_TITLE_MAX
    return {
        "type": "modal",
        "callback_id": DECLARE_MODAL,
        "title": plain("Declare incident"),
        "submit": plain("Declare"),
        "close": plain("Cancel"),
        "blocks": [
            title,
            _input("severity", "Severity", severity, optional=False),
            _text("service", "Service", "e.g. checkout", multiline=False),
            _text("impact", "Impact", "Who or what is affected"),
            _input("commander", "Commander", lead),
        ],
    }


def read_declare_submission(
    state_values: Mapping[str, Any], severities: Sequence[str]
) -> dict[str, str]:
    """The declare modal's fields: ``title``, ``severity``, ``service``, ``impact``,
    ``commander`` (a user id); an empty field is ``""``."""
    commander = _action(state_values, "commander").get("selected_user")
    values = {
        "title": _typed(state_values, "title"),
        "severity": _chosen(state_values, "severity", severities),
        "service": _typed(state_values, "service"),
        "impact": _typed(state_values, "impact"),
        "commander": commander if isinstance(commander, str) else "",
    }
    if not values["title"]:
        raise ValueError("the declare form came back without a title")
    return values


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
