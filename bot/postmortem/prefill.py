"""A resolution already written from the record: what the resolve form and the draft start from.

- summary: the incident's title, and the progress of its last status update;
- root cause: candidates from the diagnostics graded red (the latest red result of each step),
  as ``idle connections 63 > 50 on main``;
- resolution: the mitigations that ran and succeeded, in order.

The responder edits it before submitting; the post-mortem draft uses it where a field the
responder gave is empty. Step runs are read from their ``step_run`` rows (the grading's
reason is kept there), updates from the timeline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.models import Incident, StepRun, TimelineEvent

TEXT_MAX = 3000
#: One threshold's part of a grading reason: ``idle connections = 63 (red: > 50)``.
_VERDICT = re.compile(r"^(?P<label>.+?) = (?P<value>.+?) \((?P<grade>red|yellow): (?P<cond>.+)\)$")


@dataclass(frozen=True, slots=True)
class ResolvePrefill:
    summary: str
    root_cause: str
    resolution: str


def prefill(incident: Incident, runs: Sequence[StepRun], progress: str = "") -> ResolvePrefill:
    """The resolution the record suggests: ``runs`` oldest first, ``progress`` the last update's."""
    return ResolvePrefill(
        summary=_summary(incident, progress)[:TEXT_MAX],
        root_cause="\n".join(root_causes(runs))[:TEXT_MAX],
        resolution="\n".join(resolutions(runs))[:TEXT_MAX],
    )


async def load_prefill(session: AsyncSession, incident: Incident) -> ResolvePrefill:
    """:func:`prefill` from the database: the incident's step runs and its last update."""
    runs_query = select(StepRun).where(col(StepRun.incident_id) == incident.id)
    runs = list((await session.exec(runs_query.order_by(col(StepRun.id)))).all())
    updates_query = (
        select(TimelineEvent)
        .where(col(TimelineEvent.incident_id) == incident.id, col(TimelineEvent.kind) == "update")
        .order_by(col(TimelineEvent.at).desc(), col(TimelineEvent.id).desc())
        .limit(1)
    )
    last = (await session.exec(updates_query)).first()
    progress = str(last.data.get("progress") or "") if last is not None else ""
    return prefill(incident, runs, progress)


def root_causes(runs: Sequence[StepRun]) -> list[str]:
    """One line per diagnostic step whose latest red result says why it was red."""
    latest: dict[tuple[str, str], StepRun] = {}
    for run in runs:
        if run.kind == "diagnostic" and run.status == "done" and run.grade == "red":
            latest.pop((run.runbook, run.step), None)
            latest[(run.runbook, run.step)] = run
    lines: list[str] = []
    for run in latest.values():
        for line in _red_parts(run):
            if line not in lines:
                lines.append(line)
    return lines


def resolutions(runs: Sequence[StepRun]) -> list[str]:
    """One line per mitigation that ran and succeeded."""
    lines = []
    for run in runs:
        if run.kind != "mitigation" or run.status != "done" or run.grade == "error":
            continue
        params = ", ".join(f"{k}={v}" for k, v in run.params.items())
        what = f"{run.step}" + (f" ({params})" if params else "")
        line = f"Ran {run.runbook}/{what} on {run.target}"
        lines.append(line + (f": {run.summary}" if run.summary else ""))
    return lines


def _red_parts(run: StepRun) -> list[str]:
    reason = str((run.output or {}).get("reason") or "")
    found = []
    for part in (p.strip() for p in reason.split(";")):
        match = _VERDICT.match(part)
        if match is not None and match["grade"] == "red":
            found.append(f"{match['label']} {match['value']} {match['cond']} on {run.target}")
    return found or [f"{run.step} on {run.target}: {run.summary or 'red'}"]


def _summary(incident: Incident, progress: str) -> str:
    progress = progress.strip()
    title = incident.title.strip()
    if not progress:
        return title
    return f"{title}. Last update: {progress}"
