"""Suggested mitigations: ``suggested_by`` validated at load, and which results suggest what."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.errors import ConfigError
from bot.runbooks import builtin_dir, load_runbooks
from bot.runbooks.model import Runbook
from bot.runbooks.suggest import suggest
from bot.store.models import StepRun

from .conftest import write_runbook

T = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

BOOK = """\
id: custom
title: Custom checks
diagnostics:
  - id: idle
    title: Idle connections
    kind: postgres
    target: main
    sql: SELECT pid FROM pg_stat_activity
    thresholds: [{metric: rows, label: idle connections, green: "< 10", red: "> 50"}]
mitigations:
  - id: terminate
    title: Terminate
    kind: postgres
    target: main
    preview: idle
    suggested_by:
      - {diagnostic: SUGGESTER, grades: GRADES}
    sql: SELECT pg_terminate_backend(pid) FROM pg_stat_activity
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_runbooks([path])
    return [str(p) for p in caught.value.problems]


def test_suggested_by_names_a_diagnostic_of_the_runbook_with_file_and_line(
    tmp_path: Path,
) -> None:
    wrong = write_runbook(tmp_path, BOOK.replace("SUGGESTER", "idel").replace("GRADES", "[red]"))
    (problem,) = problems_of(wrong)
    assert problem.startswith(f"{wrong}:17: custom.mitigations.terminate.suggested_by.0.diagnostic")
    assert "has no diagnostic 'idel'" in problem
    assert "It has: idle" in problem


def test_suggested_by_grades_are_yellow_or_red(tmp_path: Path) -> None:
    green = write_runbook(tmp_path, BOOK.replace("SUGGESTER", "idle").replace("GRADES", "[green]"))
    (problem,) = problems_of(green)
    assert problem.startswith(f"{green}:17: mitigations.0.suggested_by.0.grades.0")
    assert "'yellow' or 'red'" in problem
    empty = write_runbook(tmp_path, BOOK.replace("SUGGESTER", "idle").replace("GRADES", "[]"))
    assert "at least one grade" in problems_of(empty)[0]


def test_only_mitigations_are_suggested(tmp_path: Path) -> None:
    text = BOOK.replace("SUGGESTER", "idle").replace("GRADES", "[red]")
    text = text.replace(
        "    sql: SELECT pid FROM pg_stat_activity\n",
        "    sql: SELECT pid FROM pg_stat_activity\n    suggested_by: [{diagnostic: idle}]\n",
    )
    found = problems_of(write_runbook(tmp_path, text))
    assert any(
        ":9: custom.diagnostics.idle.suggested_by: only mitigations have this key" in p
        for p in found
    ), found


def _books() -> dict[str, Runbook]:
    return {b.id: b for b in load_runbooks([builtin_dir()])}


def _run(
    run_id: int,
    runbook: str,
    step: str,
    grade: str,
    *,
    kind: str = "diagnostic",
    status: str = "done",
    reason: str = "",
    columns: list[str] | None = None,
    rows: list[list[Any]] | None = None,
    params: dict[str, Any] | None = None,
) -> StepRun:
    return StepRun(
        id=run_id,
        incident_id=1,
        runbook=runbook,
        step=step,
        kind=kind,
        step_kind="postgres",
        target="main",
        params=params or {},
        status=status,
        requested_by="warroom",
        requested_at=T,
        grade=grade,
        summary=f"{len(rows or [])} rows",
        output={"reason": reason, "columns": columns or [], "rows": rows or []},
    )


IDLE_RED = "idle connections = 63 (red: > 50)"


def test_a_red_idle_connections_result_suggests_terminating_them_with_its_minutes() -> None:
    book = _books()["db-connection-exhaustion"]
    runs = [_run(1, book.id, "idle_connections", "red", reason=IDLE_RED, params={"minutes": 5})]
    (step,) = suggest([book], runs)
    assert (step.runbook, step.step) == ("db-connection-exhaustion", "terminate_idle")
    assert step.title == "Terminate idle connections older than N minutes"
    assert step.because == f"idle_connections red: {IDLE_RED}"
    assert step.params == {"minutes": 5}


def test_green_or_ungraded_results_suggest_nothing_and_the_latest_result_counts() -> None:
    book = _books()["db-connection-exhaustion"]
    green = _run(2, book.id, "idle_connections", "green", reason="idle connections = 1 (green)")
    assert suggest([book], [green]) == []
    assert suggest([book], [_run(1, book.id, "idle_connections", "info")]) == []
    red = _run(1, book.id, "idle_connections", "red", reason=IDLE_RED)
    assert suggest([book], [red, green]) == []  # it went green since
    # connection_utilisation suggests it only at red, idle_connections at yellow too.
    yellow = _run(3, book.id, "connection_utilisation", "yellow")
    assert suggest([book], [yellow]) == []
    assert [s.step for s in suggest([book], [_run(3, book.id, "idle_connections", "yellow")])] == [
        "terminate_idle"
    ]


def test_a_mitigation_that_ran_is_not_suggested_until_a_newer_result_is_red_again() -> None:
    book = _books()["db-connection-exhaustion"]
    red = _run(1, book.id, "idle_connections", "red", reason=IDLE_RED)
    ran = _run(2, book.id, "terminate_idle", "info", kind="mitigation")
    assert suggest([book], [red, ran]) == []
    failed = _run(2, book.id, "terminate_idle", "error", kind="mitigation", status="failed")
    assert [s.step for s in suggest([book], [red, failed])] == ["terminate_idle"]
    again = _run(3, book.id, "idle_connections", "red", reason=IDLE_RED)
    assert [s.step for s in suggest([book], [red, ran, again])] == ["terminate_idle"]


def test_a_required_parameter_comes_from_the_first_row_or_the_step_is_not_suggested() -> None:
    book = _books()["db-performance-degradation"]
    columns = ["schemaname", "tablename", "dead_pct", "table"]
    bloat = _run(
        1,
        book.id,
        "table_bloat",
        "red",
        reason="worst dead tuple % = 42 (red: > 30)",
        columns=columns,
        rows=[["public", "orders", 42.0, "public.orders"], ["public", "x", 31.0, "public.x"]],
        params={"min_dead": 10000},
    )
    (step,) = suggest([book], [bloat])
    assert step.step == "vacuum_analyze"
    assert step.params == {"table": "public.orders"}
    no_rows = _run(1, book.id, "table_bloat", "red", columns=columns, rows=[])
    assert suggest([book], [no_rows]) == []


def test_red_suggestions_come_before_yellow_ones() -> None:
    books = _books()
    exhaustion, cache = books["db-connection-exhaustion"], books["cache-failure"]
    runs = [
        _run(1, exhaustion.id, "idle_connections", "yellow"),
        _run(2, cache.id, "hit_rate", "red", reason="cache hit rate % = 12 (red: < 50)"),
    ]
    assert [s.step for s in suggest([exhaustion, cache], runs)] == ["flushdb", "terminate_idle"]
