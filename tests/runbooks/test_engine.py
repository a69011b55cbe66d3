"""The engine's use cases and its audit: every run, refusal and approval is a row and an event."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.errors import IncidentNotFound, UserError
from bot.incidents.lifecycle import Incidents
from bot.intake.alerts.model import AlertStatus, NormalizedAlert
from bot.runbooks import (
    KINDS,
    Outcome,
    Runbooks,
    RunbookSettings,
    StepCall,
    load_configured,
    load_runbooks,
    register_kind,
)
from bot.runbooks.errors import (
    InvalidParameter,
    NotAllowed,
    Refused,
    RunbookNotFound,
    RunNotPending,
    StepNotFound,
)
from bot.runbooks.grading import Grade
from bot.runbooks.kinds import Problem
from bot.runbooks.targets import TargetType
from bot.store.db import Database
from bot.store.models import Alert, Incident, StepRun, TimelineEvent

from .conftest import COMMANDER, SECOND, SQLITE_STORE, STRANGER, write_runbook

#: The keys the post-mortem builder reads from every step event.
EVENT_KEYS = {
    "run_id",
    "runbook",
    "step",
    "kind",
    "target",
    "params",
    "grade",
    "summary",
    "rows",
    "duration_ms",
    "requested_by",
    "approved_by",
    "confirmed_by",
}


def alert(name: str, **labels: str) -> NormalizedAlert:
    return NormalizedAlert(
        source="alertmanager",
        fingerprint=name,
        status=AlertStatus.FIRING,
        labels={"alertname": name, **labels},
        annotations={},
        summary=name,
    )


async def test_a_diagnostic_run_is_a_row_and_an_event_on_both_databases(
    engine: Runbooks, incident: Incident, db: Database
) -> None:
    (result,) = await engine.diagnose(
        incident.key, "db-connection-exhaustion", "connection_utilisation", actor=COMMANDER
    )
    assert result.error is None
    assert result.run_id is not None
    assert result.columns == ["connections", "max_connections", "used_pct"]
    assert result.grade in (Grade.GREEN, Grade.YELLOW, Grade.RED)
    assert result.reason.startswith("connections used % = ")
    assert len(result.output_digest) == 64
    async with db.transaction(read_only=True) as session:
        (run,) = (await session.exec(select(StepRun))).all()
        events = (
            await session.exec(select(TimelineEvent).where(col(TimelineEvent.kind) == "step_run"))
        ).all()
    assert run.id == result.run_id
    assert run.status == "done"
    assert run.kind == "diagnostic"
    assert run.step_kind == "postgres"
    assert run.target == "main"
    assert run.requested_by == COMMANDER
    assert run.output["rows"] == result.rows
    assert run.digest == result.output_digest
    assert run.duration_ms == result.duration_ms
    assert run.grade == result.grade.value
    (event,) = events
    assert set(event.data) >= EVENT_KEYS
    assert event.actor == COMMANDER
    assert event.data["run_id"] == run.id
    assert event.data["rows"] == result.rows_as_dicts()
    assert event.text.startswith(
        "diagnostic db-connection-exhaustion/connection_utilisation on postgres main: "
    )


@SQLITE_STORE
def test_matching_by_name_labels_and_runbook_url(engine: Runbooks, tmp_path: Path) -> None:
    incident = Incident(
        key="INC-0001", number=1, title="x", severity="P1", created_by="U", service="api"
    )
    names = [rb.id for rb in engine.match(incident, [alert("HighErrorRate")])]
    assert names == ["high-error-rate"]
    linked = NormalizedAlert(
        source="grafana",
        fingerprint="f",
        status=AlertStatus.FIRING,
        labels={"alertname": "Whatever"},
        annotations={},
        summary="s",
        links={"runbook": "https://wiki.example.com/runbooks/cache/"},
    )
    assert engine.match(incident, [linked]) == []
    custom = load_runbooks(
        [
            write_runbook(
                tmp_path,
                """\
id: api-cache
title: API cache
match:
  labels: ["service=api", "env!~staging|dev"]
  runbook_urls: ["https://wiki.example.com/runbooks/cache"]
diagnostics: []
""",
            )
        ]
    )
    engine._runbooks.update({rb.id: rb for rb in custom})
    assert [rb.id for rb in engine.match(incident, [linked])] == ["api-cache"]
    both = engine.match(incident, [alert("RedisDown", env="prod"), linked])
    assert [rb.id for rb in both] == ["api-cache", "cache-failure"]
    assert [rb.id for rb in engine.match(incident, [alert("Nope", env="staging")])] == []


@SQLITE_STORE
async def test_auto_diagnose_runs_the_matched_runbooks_from_stored_alerts(
    engine: Runbooks, incident: Incident, db: Database, clock: FixedClock
) -> None:
    async with db.transaction() as session:
        for name in ("CriticalConnectionPoolUtilization", "HighErrorRate"):
            session.add(
                Alert(
                    incident_id=incident.id,
                    source="alertmanager",
                    fingerprint=name,
                    status="firing",
                    labels={"alertname": name},
                    first_seen=clock.now(),
                    last_seen=clock.now(),
                )
            )
    # No http target configured: the high-error-rate checks are skipped, not shown as errors.
    targets = engine.settings.targets.model_copy(update={"http": {}})
    engine = Runbooks(
        engine.db,
        engine.incidents,
        runbooks=engine.runbooks,
        settings=engine.settings.model_copy(update={"targets": targets}),
    )
    assert [rb.id for rb in await engine.matching(incident.key)] == [
        "db-connection-exhaustion",
        "high-error-rate",
    ]
    results = await engine.auto_diagnose(incident.key)
    assert [r.step for r in results] == [
        "connections_by_state",
        "connection_utilisation",
        "idle_connections",
        "long_transactions",
    ]
    assert all(r.error is None for r in results)
    runs = await engine.runs(incident.key)
    assert {r.requested_by for r in runs} == {"warroom"}
    assert len(runs) == 4
    quiet = Runbooks(
        engine.db,
        engine.incidents,
        runbooks=engine.runbooks,
        settings=engine.settings.model_copy(update={"auto_diagnose": False}),
    )
    assert await quiet.auto_diagnose(incident.key) == []


@SQLITE_STORE
async def test_lookups_and_parameter_errors_say_what_to_do(
    engine: Runbooks, incident: Incident
) -> None:
    with pytest.raises(RunbookNotFound, match=r"No runbook 'nope'\. Known runbooks: "):
        await engine.diagnose(incident.key, "nope", actor=COMMANDER)
    with pytest.raises(StepNotFound, match=r"has no diagnostic 'nope'\. It has: connections_by"):
        await engine.diagnose(incident.key, "db-connection-exhaustion", "nope", actor=COMMANDER)
    with pytest.raises(StepNotFound, match="has no mitigation 'ping'"):
        await engine.request(incident.key, "cache-failure", "ping", actor=COMMANDER)
    with pytest.raises(IncidentNotFound):
        await engine.diagnose("INC-9999", "db-locks", actor=COMMANDER)
    with pytest.raises(InvalidParameter, match=r"pid is required \(int 1–2147483647\)"):
        await engine.diagnose(incident.key, "db-locks", "backend", actor=COMMANDER)
    with pytest.raises(InvalidParameter, match="has no diagnostic taking colour"):
        await engine.diagnose(incident.key, "db-locks", params={"colour": "red"}, actor=COMMANDER)
    refused = await engine.runs(incident.key)
    assert [(r.status, r.step) for r in refused] == [("refused", "backend"), ("refused", "*")]


@SQLITE_STORE
async def test_a_stale_preview_cannot_be_confirmed(
    engine: Runbooks, incident: Incident, clock: FixedClock, incidents: Incidents
) -> None:
    pending = await engine.request(
        incident.key, "db-locks", "cancel_backend", params={"pid": "1"}, actor=COMMANDER
    )
    assert pending.preview is not None
    assert pending.preview.rows == []
    assert pending.expires_at == clock.now() + timedelta(minutes=15)
    clock.advance(timedelta(minutes=16))
    with pytest.raises(RunNotPending, match="expired"):
        await engine.confirm(pending.run_id, actor=COMMANDER)
    with pytest.raises(RunNotPending, match="is refused"):
        await engine.confirm(pending.run_id, actor=COMMANDER)
    stored = {r.id: r for r in await engine.runs(incident.key)}[pending.run_id]
    assert stored.status == "refused"
    assert stored.summary.startswith("expired")
    kinds = [e.kind for e in await incidents.timeline(incident.key) if e.kind.startswith("step")]
    assert kinds == ["step_run", "step_requested", "step_refused", "step_refused"]


@SQLITE_STORE
async def test_two_confirmations_at_once_run_the_mitigation_once(
    engine: Runbooks, incident: Incident
) -> None:
    pending = await engine.request(
        incident.key,
        "db-connection-exhaustion",
        "terminate_idle",
        params={"minutes": "1440"},
        actor=COMMANDER,
    )
    outcomes = await asyncio.gather(
        engine.confirm(pending.run_id, actor=COMMANDER),
        engine.confirm(pending.run_id, actor=COMMANDER),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["RunNotPending", "StepResult"]
    done = [r for r in await engine.runs(incident.key) if r.step == "terminate_idle"]
    assert [r.status for r in done] == ["done", "refused"]


@SQLITE_STORE
async def test_people_are_allowed_by_role_user_group_or_grant(
    db: Database, incidents: Incidents, incident: Incident, settings: RunbookSettings
) -> None:
    granted = RunbookSettings.model_validate(
        {
            "targets": settings.targets,
            "grants": {
                "*": {"groups": ["S_ONCALL"]},
                "db-locks": {"users": [SECOND]},
                "db-locks.terminate_backend": {"roles": ["dba"]},
            },
        }
    )
    engine = Runbooks(db, incidents, runbooks=load_configured(granted), settings=granted)
    args: dict[str, Any] = {"params": {"pid": "1"}}
    await engine.request(incident.key, "db-locks", "cancel_backend", actor=COMMANDER, **args)
    await engine.request(incident.key, "db-locks", "cancel_backend", actor=SECOND, **args)
    await engine.request(
        incident.key,
        "cache-failure",
        "kill_client",
        params={"client_id": "1"},
        actor=STRANGER,
        groups=["S_ONCALL"],
    )
    await engine.request(
        incident.key, "db-locks", "terminate_backend", actor=STRANGER, roles=["dba"], **args
    )
    with pytest.raises(NotAllowed) as caught:
        await engine.request(
            incident.key, "db-locks", "cancel_backend", actor=STRANGER, roles=["dba"], **args
        )
    assert str(caught.value) == (
        "You may not run db-locks/cancel_backend: it is allowed to incident roles commander; "
        f"users <@{SECOND}>; groups <!subteam^S_ONCALL>."
    )
    with pytest.raises(NotAllowed):
        await engine.request(incident.key, "cache-failure", "flushdb", actor=SECOND)


class EchoSpec(BaseModel):
    message: str


class EchoKind:
    """A user's own kind: it joins the registry exactly as the built-in ones do."""

    name = "echo"
    target_type: TargetType = "http"
    spec_model = EchoSpec
    mitigation_only = False

    def check(self, spec: EchoSpec, params: Any, *, mitigation: bool) -> list[Problem]:
        return [] if spec.message else [Problem("message", "say something")]

    async def run(self, call: StepCall) -> Outcome:
        if call.spec.message == "crash":
            raise RuntimeError("a bug in the user's kind")
        text = f"{call.spec.message} {call.params.get('name', '')}".strip()
        return Outcome(["echo"], [[text]], {"length": len(text)}, f"echoed {len(text)} chars")


@SQLITE_STORE
async def test_a_users_kind_joins_the_registry(
    engine: Runbooks, incident: Incident, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register_kind(EchoKind())
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_kind(EchoKind())
        path = write_runbook(
            tmp_path,
            """\
id: echoes
title: Echoes
diagnostics:
  - id: hello
    title: Hello
    kind: echo
    target: app
    message: hello
    params: {name: {type: string, default: world}}
    thresholds: [{metric: length, green: "< 20"}]
  - {id: crash, title: Crash, kind: echo, target: app, message: crash}
  - {id: nowhere, title: Nowhere, kind: echo, target: missing, message: hi}
""",
        )
        for book in load_runbooks([path]):
            engine._runbooks[book.id] = book
        hello, crash, nowhere = await engine.diagnose(incident.key, "echoes", actor=COMMANDER)
        assert hello.rows == [["hello world"]]
        assert hello.grade is Grade.GREEN
        assert crash.grade is Grade.ERROR
        assert (crash.error or "").startswith("internal error (reference ")
        assert "a bug in the user's kind" in caplog.text
        assert nowhere.error == (
            "http target 'missing' is not configured (add it under runbooks.targets.http)"
        )
    finally:
        KINDS.pop("echo", None)


@SQLITE_STORE
async def test_approving_what_needs_no_approval_and_unknown_runs(
    engine: Runbooks, incident: Incident
) -> None:
    pending = await engine.request(
        incident.key, "db-locks", "cancel_backend", params={"pid": "1"}, actor=COMMANDER
    )
    with pytest.raises(UserError, match="needs no second person: confirm run"):
        await engine.approve(pending.run_id, actor=SECOND)
    with pytest.raises(UserError, match="No mitigation request #999"):
        await engine.confirm(999, actor=COMMANDER)
    again = await engine.pending(pending.run_id)
    assert again.status == "pending"
    assert again.preview is not None
    assert again.preview.step == "backend"
    assert again.preview.run_id is not None
    with pytest.raises(UserError, match="No mitigation request"):
        await engine.pending(again.preview.run_id)


@SQLITE_STORE
async def test_a_failed_preview_refuses_the_request(
    engine: Runbooks, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RB_TEST_PG", "postgresql://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(Refused, match="the preview failed \\(cannot connect to postgres target"):
        await engine.request(
            incident.key, "db-connection-exhaustion", "terminate_idle", actor=COMMANDER
        )
    preview, request = await engine.runs(incident.key)
    assert (preview.step, preview.status, preview.grade) == ("idle_connections", "failed", "error")
    assert (request.step, request.status) == ("terminate_idle", "refused")
    assert request.output == {"preview_run_id": preview.id}
