"""Runbooks in Slack: a button per diagnostic step, and Confirm / Approve for a mitigation.

A diagnostic button's action id is ``runbook.diag.<n>`` and its value
``<incident key>|<runbook>|<step>``; a mitigation's buttons carry the id of its pending run.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.slack.blocks.compose import Block, button, mrkdwn, plain
from handlers.slack.blocks.limits import MAX_BLOCKS
from handlers.slack.blocks.messages import help_blocks

# Action ids: the listeners register these (RUNBOOK_DIAG as the prefix of ``.<n>``).
RUNBOOK_DIAG = "runbook.diag"
RUNBOOK_CONFIRM = "runbook.confirm"
RUNBOOK_APPROVE = "runbook.approve"


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


def pending_blocks(text: str, run_id: int, *, needs_approval: bool) -> list[Block]:
    """A previewed mitigation: Confirm (danger, with Slack's confirm dialog) and Approve."""
    blocks = help_blocks(text)[: MAX_BLOCKS - 1]
    confirm = {
        "title": plain("Run this mitigation?"),
        "text": mrkdwn("It changes a production system. The preview above shows what it touches."),
        "confirm": plain("Run it"),
        "deny": plain("Cancel"),
        "style": "danger",
    }
    buttons = [button("Confirm", RUNBOOK_CONFIRM, str(run_id), style="danger", confirm=confirm)]
    if needs_approval:
        buttons.insert(0, button("Approve", RUNBOOK_APPROVE, str(run_id), style="primary"))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks
