"""The http and webhook kinds against a real local service with slow and failing endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.incidents.lifecycle import Incidents
from bot.runbooks import Runbooks, load_runbooks
from bot.runbooks.errors import InvalidParameter
from bot.runbooks.grading import Grade
from bot.store.models import Incident

from .conftest import COMMANDER, OPS_TOKEN, SQLITE_STORE, LocalService, write_runbook

ENDPOINTS = """\
id: endpoints
title: Endpoints
diagnostics:
  - id: health
    title: Healthy
    kind: http
    target: app
    path: /health
    json_fields: {status: status}
    thresholds:
      - {metric: latency_ms, green: "< 300", red: "> 500"}
      - {metric: status, green: "== ok", red: "!= ok"}
  - id: slow
    title: Slow
    kind: http
    target: app
    path: /slow
    thresholds:
      - {metric: latency_ms, green: "< 300", red: "> 500"}
  - id: failing
    title: Failing
    kind: http
    target: app
    path: /fail
  - id: hang
    title: Hangs
    kind: http
    target: app
    path: /hang
    timeout: 500ms
  - id: not_json
    title: Not JSON
    kind: http
    target: app
    path: /notjson
    json_fields: {status: status}
  - id: item
    title: One item
    kind: http
    target: app
    path: /items/{item}
    query: {verbose: "{verbose}"}
    expect_status: [404]
    params:
      item: {type: string}
      verbose: {type: int, default: 1, min: 0, max: 1}
mitigations:
  - id: broken_hook
    title: A webhook that fails
    kind: webhook
    target: broken
    action: circuit_breaker
"""


@pytest.fixture
def endpoints(engine: Runbooks, tmp_path: Path) -> Runbooks:
    for book in load_runbooks([write_runbook(tmp_path, ENDPOINTS)]):
        engine._runbooks[book.id] = book
    return engine


@SQLITE_STORE
async def test_slow_and_failing_endpoints_are_graded(
    endpoints: Runbooks, incident: Incident
) -> None:
    results = {
        r.step: r for r in await endpoints.diagnose(incident.key, "endpoints", actor=COMMANDER)
    }
    assert set(results) == {"health", "slow", "failing", "hang", "not_json"}  # item needs a value
    health = results["health"]
    assert health.grade is Grade.GREEN
    assert health.values["status"] == "ok"
    assert health.summary.startswith("GET /health → 200 in ")

    slow = results["slow"]
    assert slow.values["latency_ms"] >= 600
    assert slow.grade is Grade.RED
    assert "latency_ms = " in slow.reason
    assert "(red: > 500)" in slow.reason

    failing = results["failing"]
    assert failing.grade is Grade.RED
    assert failing.error is None
    assert failing.reason == "status 500 (expected 200)"
    body = dict(failing.rows)["body"]
    assert body.startswith("boom: password=********")
    assert "hunter22" not in body

    hang = results["hang"]
    assert hang.grade is Grade.ERROR
    assert hang.error == "http target 'app' did not answer within 0.5s"
    assert results["not_json"].grade is Grade.RED
    assert results["not_json"].reason.startswith("the answer is not JSON")


@SQLITE_STORE
async def test_parameters_fill_one_path_segment(endpoints: Runbooks, incident: Incident) -> None:
    (item,) = await endpoints.diagnose(
        incident.key, "endpoints", "item", params={"item": "../admin?x=1#y"}, actor=COMMANDER
    )
    assert item.summary.startswith("GET /items/..%2Fadmin%3Fx%3D1%23y?verbose=1 → 404")
    assert item.grade is Grade.INFO  # 404 was expected; no thresholds
    (dots,) = await endpoints.diagnose(
        incident.key, "endpoints", "item", params={"item": ".."}, actor=COMMANDER
    )
    assert dots.grade is Grade.ERROR
    assert "is not a path segment" in (dots.error or "")


@SQLITE_STORE
async def test_the_metrics_endpoint_against_the_dashboard_table(
    engine: Runbooks, incident: Incident, service: LocalService
) -> None:
    health, metrics = await engine.diagnose(incident.key, "high-error-rate", actor=COMMANDER)
    assert health.grade is Grade.GREEN
    assert metrics.values == {
        "status": 200,
        "latency_ms": metrics.values["latency_ms"],
        "error_rate_pct": 2.5,
        "p95_latency_ms": 700,
        "cache_hit_rate_pct": 91,
        "pool_utilisation_pct": 45,
    }
    assert metrics.grade is Grade.RED
    assert metrics.reason.split("; ") == [
        "error rate % = 2.5 (red: > 1)",
        "P95 latency ms = 700 (yellow: not < 500)",
        "cache hit rate % = 91 (green: > 70)",
        "connection pool % = 45 (green: < 50)",
    ]
    service.metrics = {"error_rate": 0.05}
    (_health, partial) = await engine.diagnose(incident.key, "high-error-rate", actor=COMMANDER)
    assert partial.grade is Grade.GREEN
    assert "P95 latency ms: no value" in partial.reason


@SQLITE_STORE
async def test_the_morning_health_check_grades_against_the_success_criteria(
    engine: Runbooks, incident: Incident, redis_url: str
) -> None:
    results = {
        r.step: r
        for r in await engine.diagnose(incident.key, "morning-health-check", actor=COMMANDER)
    }
    assert all(r.error is None for r in results.values()), {
        k: r.error for k, r in results.items() if r.error
    }
    assert results["app_health"].grade is Grade.INFO  # 200 as expected, nothing to grade
    assert results["response_time"].grade is Grade.GREEN
    assert results["error_rate"].grade is Grade.YELLOW  # 2.5 %: over 1 %, under the 5 % escalation
    assert results["db_connections"].grade is Grade.GREEN
    assert results["long_running_queries"].grade is Grade.GREEN
    assert results["redis_ping"].rows[0][0] == "PONG"


@SQLITE_STORE
async def test_rollback_through_the_webhook_records_the_answer(
    engine: Runbooks, incident: Incident, incidents: Incidents, service: LocalService
) -> None:
    with pytest.raises(InvalidParameter, match="does not match"):
        await engine.request(
            incident.key,
            "application-rollback",
            "rollback",
            params={"to_version": "v40; rm -rf /"},
            actor=COMMANDER,
        )
    pending = await engine.request(
        incident.key,
        "application-rollback",
        "rollback",
        params={"to_version": "v40"},
        actor=COMMANDER,
    )
    assert pending.preview is not None
    assert pending.preview.values["version"] == "v42"
    assert service.hooks == []  # nothing is sent before the confirmation
    result = await engine.confirm(pending.run_id, actor=COMMANDER)
    assert result.error is None

    (hook,) = service.hooks
    assert hook["path"] == "/hooks"
    assert hook["headers"]["Authorization"] == f"Bearer {OPS_TOKEN}"
    assert hook["headers"]["Idempotency-Key"] == f"warroom-run-{pending.run_id}"
    body = hook["body"]
    assert body["action"] == "rollback"
    assert body["payload"] == {"to_version": "v40"}
    assert body["params"] == {"to_version": "v40"}
    assert body["run_id"] == pending.run_id
    assert body["incident"]["key"] == incident.key
    assert body["incident"]["roles"] == {"commander": COMMANDER}
    assert body["requested_by"] == body["confirmed_by"] == COMMANDER

    assert dict(result.rows)["deployment"] == "v41"
    event = [e for e in await incidents.timeline(incident.key) if e.kind == "step_run"][-1]
    assert event.data["step"] == "rollback"
    assert event.data["kind"] == "mitigation"
    assert {"field": "deployment", "value": "v41"} in event.data["rows"]
    assert OPS_TOKEN not in str(event.data)


@SQLITE_STORE
async def test_a_failing_webhook_fails_the_run(endpoints: Runbooks, incident: Incident) -> None:
    pending = await endpoints.request(incident.key, "endpoints", "broken_hook", actor=COMMANDER)
    result = await endpoints.confirm(pending.run_id, actor=COMMANDER)
    assert result.grade is Grade.ERROR
    assert result.error == (
        "webhook 'broken' answered 503 to circuit_breaker: {'error': 'deployer busy'}"
        " (after 4 attempts)"
    )
    stored = {r.id: r for r in await endpoints.runs(incident.key)}[pending.run_id]
    assert stored.status == "failed"
    assert stored.output["error"] == result.error
