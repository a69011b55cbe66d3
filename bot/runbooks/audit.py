"""The audit of runbook steps: ``step_run`` rows and the timeline events that tell them.

Event kinds: ``step_run`` (a diagnostic or mitigation ran, done or failed),
``step_requested`` (a previewed mitigation waits for its confirmation), ``step_approved``
(the second person), ``step_cancelled`` (the requester or the commander withdrew a pending
request; the run's status becomes ``cancelled``) and ``step_refused`` (a request, approval,
confirmation or cancel refused, or a request expired). Every event's data holds the same
keys, which the post-mortem reads:
``run_id``, ``runbook``, ``step``, ``kind`` (diagnostic / mitigation), ``target``,
``params``, ``grade``, ``summary``, ``rows`` (the first ten, as dicts), ``duration_ms``,
``requested_by``, ``approved_by``, ``confirmed_by`` — plus ``step_kind`` and ``status``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.incidents.lifecycle import Change
from bot.runbooks.model import Step
from bot.runbooks.results import StepResult
from bot.store.models import StepRun

TEXT_MAX = 3000


def new_run(
    incident_id: int,
    runbook: str,
    step: Step,
    mode: str,
    *,
    actor: str,
    params: dict[str, Any],
    status: str,
    now: datetime,
    summary: str = "",
) -> StepRun:
    return StepRun(
        incident_id=incident_id,
        runbook=runbook,
        step=step.id,
        kind=mode,
        step_kind=step.kind,
        target=step.target,
        params=params,
        status=status,
        requested_by=actor,
        requested_at=now,
        summary=summary,
    )


def finished_run(incident_id: int, result: StepResult, *, actor: str, now: datetime) -> StepRun:
    """The row of a step that ran at once (a diagnostic, a preview): asked and run by ``actor``."""
    run = StepRun(
        incident_id=incident_id,
        runbook=result.runbook,
        step=result.step,
        kind=result.mode,
        step_kind=result.kind,
        target=result.target,
        params=result.params,
        status="running",
        requested_by=actor,
        confirmed_by=actor,
        requested_at=now,
        started_at=now,
    )
    finish(run, result, now)
    return run


def refused_request(
    incident_id: int,
    runbook: str,
    step: Step | None,
    mode: str,
    *,
    actor: str,
    params: dict[str, Any],
    reason: str,
    now: datetime,
) -> StepRun:
    """A refused request; ``step`` None for a whole runbook's diagnostics (shown as ``*``)."""
    return StepRun(
        incident_id=incident_id,
        runbook=runbook,
        step=step.id if step else "*",
        kind=mode,
        step_kind=step.kind if step else "",
        target=step.target if step else "",
        params=params,
        status="refused",
        requested_by=actor,
        requested_at=now,
        summary=reason,
    )


def refusal_of(run: StepRun, *, actor: str, reason: str, now: datetime) -> StepRun:
    """A refused approval or confirmation of ``run``, as a row of its own."""
    return StepRun(
        incident_id=run.incident_id,
        runbook=run.runbook,
        step=run.step,
        kind=run.kind,
        step_kind=run.step_kind,
        target=run.target,
        params=dict(run.params),
        status="refused",
        requested_by=actor,
        requested_at=now,
        summary=reason,
        output={"refers_to": run.id},
    )


def finish(run: StepRun, result: StepResult, now: datetime) -> None:
    run.status = "failed" if result.error is not None else "done"
    run.finished_at = now
    run.duration_ms = result.duration_ms
    run.grade = result.grade.value
    run.summary = result.summary
    run.output = {**run.output, **result.output()}
    run.digest = result.output_digest


def event(kind: str, run: StepRun, result: StepResult | None = None) -> Change:
    """The timeline entry of ``run``; the post-mortem reads exactly these data keys."""
    params = ", ".join(f"{k}={v}" for k, v in run.params.items())
    what = f"{run.runbook}/{run.step}" + (f" ({params})" if params else "")
    if kind == "step_run":
        text = f"{run.kind} {what} on {run.step_kind} {run.target}: {run.grade} — {run.summary}"
    elif kind == "step_requested":
        text = f"requested {what}; {run.summary or 'no preview'}"
    elif kind == "step_approved":
        text = f"approved {what} (run #{run.id}, requested by {run.requested_by})"
    elif kind == "step_cancelled":
        text = f"cancelled {what} (run #{run.id}, requested by {run.requested_by})"
    else:
        text = f"refused {what}: {run.summary}"
    data = {
        "run_id": run.id,
        "runbook": run.runbook,
        "step": run.step,
        "kind": run.kind,
        "target": run.target,
        "params": dict(run.params),
        "grade": run.grade,
        "summary": run.summary,
        "rows": result.rows_as_dicts() if result else [],
        "duration_ms": run.duration_ms,
        "requested_by": run.requested_by,
        "approved_by": list(run.approved_by),
        "confirmed_by": run.confirmed_by,
        "step_kind": run.step_kind,
        "status": run.status,
    }
    return Change(kind, text[:TEXT_MAX], data)
