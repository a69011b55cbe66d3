"""The next step: which mitigations the latest diagnostic results suggest.

A mitigation names the diagnostics of its runbook that suggest it, and at which grades::

    suggested_by: [{diagnostic: idle_connections, grades: [yellow, red]}]

It is suggested while the latest result of one of them (a diagnostic run or a preview) has
one of those grades, and until it ran successfully after that result. Its parameters come
from the result: those the diagnostic ran with (``minutes``), and a required one without a
default from the column of that name in the result's first row (``pid``, ``table``); a
mitigation still missing a value is not suggested (one click could not run it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.incidents.card import NextStep
from bot.runbooks.engine import Runbooks
from bot.runbooks.executor import DIAGNOSTIC, MITIGATION
from bot.runbooks.model import Mitigation, Runbook
from bot.store.models import Incident, Status, StepRun

#: Suggestions shown at most (the card's buttons).
MAX_SUGGESTIONS = 5
REASON_MAX = 200
_RANK = {"red": 0, "yellow": 1}


def suggest(books: Sequence[Runbook], runs: Sequence[StepRun]) -> list[NextStep]:
    """The mitigations of ``books`` that ``runs`` (one incident's step runs) suggest, red first."""
    latest: dict[tuple[str, str], StepRun] = {}
    ran: dict[tuple[str, str], int] = {}
    for run in sorted(runs, key=lambda r: r.id or 0):
        if run.kind == DIAGNOSTIC and run.status in ("done", "failed"):
            latest[(run.runbook, run.step)] = run
        elif run.kind == MITIGATION and run.status == "done" and run.grade != "error":
            ran[(run.runbook, run.step)] = run.id or 0
    found: list[tuple[int, NextStep]] = []
    for book in books:
        for mitigation in book.mitigations:
            for link in mitigation.suggested_by:
                result = latest.get((book.id, link.diagnostic))
                if result is None or result.grade not in link.grades:
                    continue
                if ran.get((book.id, mitigation.id), -1) > (result.id or 0):
                    break  # it ran after this result: a fresh diagnostic may suggest it again
                params = _params(mitigation, result)
                if params is None:
                    continue
                because = f"{link.diagnostic} {result.grade}: {_reason(result)}"
                step = NextStep(
                    runbook=book.id,
                    step=mitigation.id,
                    title=mitigation.title,
                    because=because[:REASON_MAX],
                    params=params,
                )
                found.append((_RANK.get(result.grade or "", 2), step))
                break
    found.sort(key=lambda item: item[0])
    return [step for _, step in found[:MAX_SUGGESTIONS]]


async def next_steps(
    session: AsyncSession, incident: Incident, runbooks: Runbooks
) -> tuple[NextStep, ...]:
    """The suggestions for ``incident`` from its stored step runs (none once it is resolved)."""
    if incident.status == Status.RESOLVED.value or incident.id is None:
        return ()
    query = select(StepRun).where(col(StepRun.incident_id) == incident.id)
    runs = list((await session.exec(query.order_by(col(StepRun.id)))).all())
    used = {run.runbook for run in runs}
    books = [book for book in runbooks.runbooks if book.id in used]
    return tuple(suggest(books, runs))


async def suggestion(runbooks: Runbooks, key: str, runbook: str, step: str) -> NextStep | None:
    """The suggestion of ``runbook.step`` for incident ``key`` now, if it is still suggested."""
    incident = await runbooks.incidents.get(key)
    async with runbooks.db.transaction(read_only=True) as session:
        steps = await next_steps(session, incident, runbooks)
    return next((s for s in steps if (s.runbook, s.step) == (runbook, step)), None)


def _params(mitigation: Mitigation, result: StepRun) -> dict[str, object] | None:
    """The mitigation's parameters taken from ``result``; None if a required one is missing."""
    output: dict[str, Any] = result.output or {}
    columns = [str(c) for c in output.get("columns", [])]
    rows = output.get("rows") or []
    first = rows[0] if rows and isinstance(rows[0], list) else []
    params: dict[str, object] = {}
    for name, param in mitigation.params.items():
        if name in result.params:
            params[name] = result.params[name]
        elif param.required:
            if name not in columns or columns.index(name) >= len(first):
                return None
            value = first[columns.index(name)]
            if value is None:
                return None
            params[name] = value
    return params


def _reason(result: StepRun) -> str:
    """The part of the grading's reason that gave the result its grade."""
    reason = str((result.output or {}).get("reason") or "")
    parts = [p.strip() for p in reason.split(";") if p.strip()]
    graded = [p for p in parts if f"({result.grade}" in p]
    return (graded or parts or [result.summary or "no detail"])[0]
