"""Thresholds grade like the runbooks' dashboard table: Green / Yellow / Red, with the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.runbooks.grading import Condition, Grade, Threshold, Verdict, grade, judge, measure, worst

# | Metric | Green | Yellow | Red |  (the runbooks' dashboard)
LATENCY = Threshold(metric="p95_ms", label="P95 Latency", green="< 500", red="> 1000")
ERRORS = Threshold(metric="error_rate_pct", green="< 0.1", red="> 1")
HIT_RATE = Threshold(metric="hit_rate_pct", green="> 70", red="< 50")
POOL = Threshold(metric="pool_pct", green="< 50", red="> 80")


@pytest.mark.parametrize(
    ("threshold", "value", "expected"),
    [
        (LATENCY, 120, Grade.GREEN),
        (LATENCY, 500, Grade.YELLOW),
        (LATENCY, 750, Grade.YELLOW),
        (LATENCY, 1000, Grade.YELLOW),
        (LATENCY, 1000.5, Grade.RED),
        (ERRORS, 0.05, Grade.GREEN),
        (ERRORS, 0.5, Grade.YELLOW),
        (ERRORS, 2.5, Grade.RED),
        (HIT_RATE, 91, Grade.GREEN),
        (HIT_RATE, 60, Grade.YELLOW),
        (HIT_RATE, 12.5, Grade.RED),
        (POOL, 45, Grade.GREEN),
        (POOL, 81, Grade.RED),
    ],
)
def test_the_dashboard_table(threshold: Threshold, value: float, expected: Grade) -> None:
    verdict = judge(threshold, float(value))
    assert verdict.grade is expected
    assert threshold.name in verdict.reason
    assert expected.value in verdict.reason


def test_bands_and_defaults() -> None:
    only_red = Threshold(metric="rows", red="> 0")
    assert judge(only_red, 0.0).grade is Grade.GREEN
    assert judge(only_red, 3.0).grade is Grade.RED
    ranged = Threshold(metric="x", green="40..70", red="> 90")
    assert judge(ranged, 55.0).grade is Grade.GREEN
    assert judge(ranged, 80.0).grade is Grade.YELLOW
    assert "yellow: not 40..70" in judge(ranged, 80.0).reason
    text = Threshold(metric="status", green="== ok", red="!= ok")
    assert judge(text, "ok").grade is Grade.GREEN
    assert judge(text, "degraded").grade is Grade.RED
    missing = judge(LATENCY, None)
    assert missing == Verdict(Grade.INFO, "P95 Latency: no value")


def test_conditions_are_validated() -> None:
    with pytest.raises(ValidationError, match="not a condition"):
        Threshold(metric="x", green="fast")
    with pytest.raises(ValidationError, match="carry no unit"):
        Threshold(metric="x", green="< 500ms")
    with pytest.raises(ValidationError, match="comparison such as '< 5'"):
        Threshold(metric="x", green=5)
    with pytest.raises(ValidationError, match="at least one of green"):
        Threshold(metric="x")
    with pytest.raises(ValueError, match="range is empty"):
        Condition.parse("9..1")


def test_metrics_come_from_values_columns_or_row_count() -> None:
    columns = ["state", "total"]
    rows = [["idle", 40], ["active", 12], ["idle in transaction", "3"]]
    assert measure(Threshold(metric="total", red="> 0"), {}, columns, rows) == 40.0
    summed = Threshold(metric="total", aggregate="sum", red="> 0")
    assert measure(summed, {}, columns, rows) == 55.0
    assert measure(Threshold(metric="total", aggregate="max", red="> 0"), {}, columns, rows) == 40
    assert measure(Threshold(metric="rows", red="> 0"), {}, columns, rows) == 3.0
    assert measure(Threshold(metric="nope", red="> 0"), {}, columns, rows) is None
    assert measure(Threshold(metric="ok", red="== 0"), {"ok": True}, [], []) == 1.0


def test_a_step_is_as_bad_as_its_worst_threshold_and_the_kinds_verdict() -> None:
    values = {"p95_ms": 700, "error_rate_pct": 2.5, "hit_rate_pct": 91}
    verdict = grade([LATENCY, ERRORS, HIT_RATE], values, [], [])
    assert verdict.grade is Grade.RED
    assert verdict.reason.startswith("error_rate_pct = 2.5 (red: > 1)")
    assert "P95 Latency = 700 (yellow" in verdict.reason
    status = Verdict(Grade.RED, "status 500 (expected 200)")
    assert grade([HIT_RATE], values, [], [], verdict=status).reason.startswith("status 500")
    assert grade([], {}, [], []).grade is Grade.INFO
    assert worst([Grade.GREEN, Grade.ERROR, Grade.RED]) is Grade.ERROR
