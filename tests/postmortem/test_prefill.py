"""The resolution drafted from the record: summary, root cause candidates, what fixed it."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.postmortem.prefill import prefill
from bot.store.models import Incident, StepRun

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _incident() -> Incident:
    return Incident(
        id=1,
        key="INC-0001",
        number=1,
        title="Checkout failing",
        severity="P1",
        status="monitoring",
        created_by="U1",
        declared_at=T,
        updated_at=T,
    )


def _run(
    run_id: int,
    step: str,
    grade: str,
    reason: str = "",
    *,
    kind: str = "diagnostic",
    status: str = "done",
    params: dict[str, object] | None = None,
) -> StepRun:
    return StepRun(
        id=run_id,
        incident_id=1,
        runbook="db-connection-exhaustion",
        step=step,
        kind=kind,
        step_kind="postgres",
        target="main",
        params=params or {},
        status=status,
        requested_by="U1",
        requested_at=T,
        grade=grade,
        summary="6 rows",
        output={"reason": reason},
    )


def test_the_form_is_written_from_the_title_the_red_results_and_the_mitigations() -> None:
    runs = [
        _run(1, "idle_connections", "red", "idle connections = 63 (red: > 50)"),
        _run(
            2,
            "connection_utilisation",
            "red",
            "connections used % = 97 (red: > 80); pool = 3 (green: < 5)",
        ),
        _run(3, "long_transactions", "yellow", "long transactions = 2 (yellow: not == 0)"),
        _run(4, "terminate_idle", "info", kind="mitigation", params={"minutes": 0}),
        _run(5, "terminate_idle", "error", kind="mitigation", status="failed"),
        _run(6, "idle_connections", "green", "idle connections = 0 (green: < 10)"),
    ]
    drafted = prefill(_incident(), runs, "killed the idle connections")
    assert drafted.summary == "Checkout failing. Last update: killed the idle connections"
    # A red result stays a candidate after the fix turned it green; yellow ones are not.
    assert drafted.root_cause.splitlines() == [
        "idle connections 63 > 50 on main",
        "connections used % 97 > 80 on main",
    ]
    assert drafted.resolution == (
        "Ran db-connection-exhaustion/terminate_idle (minutes=0) on main: 6 rows"
    )


def test_an_empty_record_leaves_only_the_title() -> None:
    drafted = prefill(_incident(), [])
    assert (drafted.summary, drafted.root_cause, drafted.resolution) == ("Checkout failing", "", "")
