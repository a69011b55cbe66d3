"""Step results as chat text: a graded headline and the rows as a monospace table."""

from __future__ import annotations

from typing import Any

from bot.runbooks.engine import Pending
from bot.runbooks.results import StepResult

GRADE_ICON = {"green": "🟢", "yellow": "🟡", "red": "🔴", "error": "⚠️", "info": "ℹ️"}
TABLE_CHARS = 2600  # leaves room in Slack's 3,000-character section
CELL = 40


def headline(result: StepResult) -> str:
    icon = GRADE_ICON.get(result.grade, "•")
    what = f"{result.runbook}.{result.step}"
    text = f"{icon} *{result.title}* (`{what}` on {result.target}, {result.duration_ms} ms)"
    detail = result.error or result.summary or result.reason
    return f"{text}\n{detail}" if detail else text


def table(result: StepResult, *, page_url: str | None = None) -> str:
    """The rows as a fixed-width table inside a code block, cut to fit one Slack message."""
    if not result.columns or not result.rows:
        return ""
    cells = [[_cell(c) for c in result.columns]] + [[_cell(v) for v in r] for r in result.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(result.columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > TABLE_CHARS:
            break
        out.append(line)
        used += len(line) + 1
    shown = max(0, len(out) - 2)
    total = result.total_rows or len(result.rows)
    body = "```\n" + "\n".join(out) + "\n```"
    if shown < total:
        where = f" (full output: {page_url})" if page_url else " (full output on the incident page)"
        body += f"\n… {total - shown} more row(s){where}"
    return body


def message(result: StepResult, *, page_url: str | None = None) -> str:
    rows = table(result, page_url=page_url)
    return headline(result) + (f"\n{rows}" if rows else "")


def pending_text(pending: Pending) -> str:
    params = ", ".join(f"{k}={v}" for k, v in pending.params.items()) or "no parameters"
    lines = [
        f"⚠️ *{pending.title}* (`{pending.runbook}.{pending.step}`, {params}) "
        f"requested by <@{pending.requested_by}>.",
    ]
    if pending.preview is not None:
        lines.append("It would touch:\n" + message(pending.preview))
    if pending.two_person and pending.status == "pending":
        lines.append("A second person must approve before it can run.")
    lines.append(f"Expires at {pending.expires_at:%H:%M} UTC. Run id {pending.run_id}.")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= CELL else text[: CELL - 1] + "…"
