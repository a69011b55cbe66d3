"""Runbooks in Slack: a button per diagnostic step; Approve / Confirm / Cancel for a mitigation.

A diagnostic button's action id is ``runbook.diag.<n>`` and its value
``<incident key>|<runbook>|<step>``; a mitigation's buttons carry the id of its pending run.
The pending request is built from the :class:`~bot.runbooks.engine.Pending` itself: the
requester is a mention made here, everything else (titles, parameters, the preview's rows) is
escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.runbooks import text as runbook_text
from bot.runbooks.engine import Pending
from handlers.slack.blocks.compose import Block, button, context, mrkdwn, plain, section
from handlers.slack.blocks.limits import CONTEXT_MAX, MAX_BLOCKS, SECTION_MAX
from handlers.slack.blocks.messages import help_blocks, message_blocks
from handlers.slack.blocks.text import clean, person, truncate

# Action ids: the listeners register these (RUNBOOK_DIAG as the prefix of ``.<n>``).
RUNBOOK_DIAG = "runbook.diag"
RUNBOOK_CONFIRM = "runbook.confirm"
RUNBOOK_APPROVE = "runbook.approve"
RUNBOOK_CANCEL = "runbook.cancel"


def runbook_blocks(text: str, key: str, steps: Sequence[tuple[str, str, str]]) -> list[Block]:
    """Matched runbooks with a button per diagnostic: ``steps`` is (runbook, step, title)."""
    blocks = help_blocks(text)
    buttons = [
        button(f"Run {title}", f"{RUNBOOK_DIAG}.{n}", f"{key}|{book}|{step}")
        for n, (book, step, title) in enumerate(steps[:25])
    ]
    for start in range(0, len(buttons), 5):
        if len(blocks) >= MAX_BLOCKS:
            break
        blocks.append({"type": "actions", "elements": buttons[start : start + 5]})
    return blocks


def _what(pending: Pending) -> str:
    params = ", ".join(f"{k}={v}" for k, v in pending.params.items()) or "no parameters"
    return clean(f"{pending.runbook}.{pending.step}, {params}", 500)


def pending_blocks(pending: Pending) -> list[Block]:
    """A mitigation request: what it runs, who asked, its preview, and what can be done now.

    While it waits: Approve (two-person steps, until approved), Confirm (danger, with Slack's
    confirm dialog) and Cancel. Once cancelled, the same message without buttons.
    """
    title = clean(pending.title, 300) or "mitigation"
    head = (
        f"⚠️ *{title}* (`{_what(pending)}`) requested by "
        f"{person(pending.requested_by, nobody='someone')}."
    )
    blocks = [section(truncate(head, SECTION_MAX))]
    if pending.preview is not None:
        shown = message_blocks("It would touch:\n" + runbook_text.message(pending.preview))
        blocks += shown[: MAX_BLOCKS - 3]
    run = f"Run id {pending.run_id}"
    if pending.status == "cancelled":
        by = person(pending.cancelled_by, nobody="someone")
        blocks.append(section(f"🚫 *Cancelled* by {by}: it can no longer be confirmed."))
        blocks.append(context(f"{run}."))
        return blocks
    state = []
    if pending.two_person and pending.status == "pending":
        state.append("A second person must approve before it can run.")
    elif pending.approved_by:
        approvers = ", ".join(person(who) for who in pending.approved_by[:5])
        state.append(f"Approved by {approvers}.")
    state.append(
        f"Expires at {pending.expires_at:%H:%M} UTC. {run}; "
        f"`/incident cancel {pending.run_id}` withdraws it."
    )
    blocks.append(context(truncate(" ".join(state), CONTEXT_MAX)))
    value = str(pending.run_id)
    confirm = {
        "title": plain("Run this mitigation?"),
        "text": mrkdwn("It changes a production system. The preview above shows what it touches."),
        "confirm": plain("Run it"),
        "deny": plain("Not yet"),
        "style": "danger",
    }
    buttons = [button("Confirm", RUNBOOK_CONFIRM, value, style="danger", confirm=confirm)]
    if pending.two_person and pending.status == "pending":
        buttons.insert(0, button("Approve", RUNBOOK_APPROVE, value, style="primary"))
    buttons.append(button("Cancel request", RUNBOOK_CANCEL, value))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


def pending_fallback(pending: Pending) -> str:
    """The request in one line, escaped but for the mention made here: its notification text."""
    what = clean(f"{pending.title} ({pending.runbook}.{pending.step})", 300)
    if pending.status == "cancelled":
        who = f"cancelled by {person(pending.cancelled_by, nobody='someone')}"
    else:
        who = f"requested by {person(pending.requested_by, nobody='someone')}"
    return f"⚠️ {what} {who}, run id {pending.run_id}."


def approved_text(pending: Pending, actor: str) -> str:
    """The in-channel notice that ``actor`` approved a request."""
    return f"{person(actor)} approved {clean(pending.title, 300)}; it can run now."
