"""A step's result as the responder sees it and the audit keeps it: graded, capped, redacted.

The digest is the SHA-256 of the stored output (columns, rows, values, summary, error) in
canonical JSON, so the evidence in a post-mortem can be checked against the ``step_run`` row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.runbooks.grading import Grade, grade
from bot.runbooks.kinds import Outcome
from bot.runbooks.model import Step
from bot.runbooks.redact import Redactor
from bot.store.models import StepRun

TIMELINE_ROWS = 10


@dataclass(frozen=True, slots=True)
class StepResult:
    runbook: str
    step: str
    title: str
    kind: str  # the step's kind: postgres, redis, http, webhook…
    mode: str  # diagnostic or mitigation
    target: str
    params: dict[str, Any]
    grade: Grade
    reason: str
    columns: list[str]
    rows: list[list[Any]]
    summary: str
    duration_ms: int
    error: str | None
    output_digest: str
    values: dict[str, Any] = field(default_factory=dict)
    total_rows: int = 0
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def rows_as_dicts(self, limit: int = TIMELINE_ROWS) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows[:limit]]

    def output(self) -> dict[str, Any]:
        """What the ``step_run`` row stores."""
        return {
            "columns": self.columns,
            "rows": self.rows,
            "total_rows": self.total_rows,
            "values": self.values,
            "reason": self.reason,
            "error": self.error,
        }


def digest(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    values: Mapping[str, Any],
    summary: str,
    error: str | None,
) -> str:
    canonical = json.dumps(
        {"columns": columns, "rows": rows, "values": values, "summary": summary, "error": error},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def build(
    runbook: str,
    step: Step,
    mode: str,
    params: dict[str, Any],
    *,
    outcome: Outcome | None,
    error: str | None,
    duration_ms: int,
    redactor: Redactor,
    max_rows: int,
) -> StepResult:
    """The result of ``outcome`` (or of ``error``, graded ``error``), redacted and capped."""
    common: dict[str, Any] = {
        "runbook": runbook,
        "step": step.id,
        "title": step.title,
        "kind": step.kind,
        "mode": mode,
        "target": step.target,
        "params": params,
        "duration_ms": duration_ms,
    }
    if outcome is None or error is not None:
        message = redactor.text(error or "no result")
        return StepResult(
            **common,
            grade=Grade.ERROR,
            reason=message,
            columns=[],
            rows=[],
            summary=message,
            error=message,
            output_digest=digest([], [], {}, message, message),
        )
    columns = [redactor.text(str(c)) for c in outcome.columns]
    rows = [redactor.value(list(r)) for r in outcome.rows[:max_rows]]
    values = redactor.value(dict(outcome.values))
    total = outcome.total_rows if outcome.total_rows is not None else len(outcome.rows)
    summary = redactor.text(outcome.summary)
    measured = {"rows": total, **values}
    verdict = grade(step.thresholds, measured, columns, rows, verdict=outcome.verdict)
    return StepResult(
        **common,
        grade=verdict.grade,
        reason=redactor.text(verdict.reason),
        columns=columns,
        rows=rows,
        summary=summary,
        error=None,
        output_digest=digest(columns, rows, values, summary, None),
        values=values,
        total_rows=total,
    )


def stored_result(run: StepRun, title: str) -> StepResult:
    """A result rebuilt from its ``step_run`` row."""
    output = run.output or {}
    return StepResult(
        runbook=run.runbook,
        step=run.step,
        title=title,
        kind=run.step_kind,
        mode=run.kind,
        target=run.target,
        params=dict(run.params),
        grade=Grade(run.grade or Grade.INFO),
        reason=output.get("reason", ""),
        columns=list(output.get("columns", [])),
        rows=list(output.get("rows", [])),
        summary=run.summary,
        duration_ms=run.duration_ms or 0,
        error=output.get("error"),
        output_digest=run.digest or "",
        values=dict(output.get("values", {})),
        total_rows=int(output.get("total_rows", 0)),
        run_id=run.id,
    )
