"""The postgres kind against a real server: exhaustion, locks, timeouts, injection, errors."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from bot.incidents.lifecycle import Incidents
from bot.runbooks import KINDS, PostgresKind, Runbooks, RunbookSettings, load_runbooks
from bot.runbooks.errors import InvalidParameter, NotAllowed
from bot.runbooks.grading import Grade
from bot.runbooks.kinds import StepCall, StepFailed
from bot.runbooks.params import coerce_all
from bot.runbooks.redact import MASK
from bot.runbooks.targets import PostgresTarget, TargetsConfig
from bot.store.models import Incident

from .conftest import COMMANDER, SQLITE_STORE, STRANGER, active_queries, write_runbook

PROBES = """\
id: probes
title: Probes
diagnostics:
  - id: sleep
    title: Sleep
    kind: postgres
    target: main
    timeout: 1s
    params: {seconds: {type: float, default: 5, min: 0, max: 60}}
    sql: SELECT pg_sleep(%(seconds)s) AS slept, 'timeout-probe-marker' AS marker
  - id: by_app
    title: Connections of one application
    kind: postgres
    target: main
    params: {app: {type: string, max_length: 200}}
    sql: SELECT count(*) AS n, %(app)s AS asked FROM pg_stat_activity WHERE application_name = %(app)s
  - id: count_rows
    title: Rows of a table
    kind: postgres
    target: main
    params: {table: {type: identifier}}
    sql: SELECT count(*) AS n FROM {table}
  - id: write
    title: A diagnostic that tries to write
    kind: postgres
    target: main
    sql: DELETE FROM victims
  - id: secrets
    title: Output with secrets in it
    kind: postgres
    target: main
    sql: |
      SELECT 'postgresql://app:hunter22@db/x' AS dsn, 'Authorization: Bearer abcdefghijkl' AS header,
             'the password is tr1ckyPass' AS known
"""  # noqa: E501


@pytest.fixture
def probes(engine: Runbooks, tmp_path: Path) -> Runbooks:
    for book in load_runbooks([write_runbook(tmp_path, PROBES)]):
        engine._runbooks[book.id] = book
    return engine


@pytest.fixture
async def idle_connections(target_dsn: str) -> AsyncIterator[list[psycopg.AsyncConnection]]:
    held = [
        await psycopg.AsyncConnection.connect(target_dsn, autocommit=True, application_name="leaky")
        for _ in range(5)
    ]
    for conn in held:
        await conn.execute("SELECT 1")
    yield held
    for conn in held:
        await conn.close()


def backends(dsn: str, pids: set[int]) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)
        ).fetchall()
    return {r[0] for r in rows}


async def test_connection_exhaustion_for_real(
    engine: Runbooks,
    incident: Incident,
    incidents: Incidents,
    idle_connections: list[psycopg.AsyncConnection],
    target_dsn: str,
) -> None:
    key = incident.key
    pids = {c.info.backend_pid for c in idle_connections}
    book = "db-connection-exhaustion"

    (by_state,) = await engine.diagnose(key, book, "connections_by_state", actor=COMMANDER)
    assert by_state.error is None
    assert by_state.columns == ["total", "state", "wait_event_type"]
    idle = [row for row in by_state.rows_as_dicts(100) if row["state"] == "idle"]
    assert idle
    assert sum(r["total"] for r in idle) >= len(pids)

    with pytest.raises(NotAllowed, match="You may not run db-connection-exhaustion/terminate_idle"):
        await engine.request(key, book, "terminate_idle", params={"minutes": "0"}, actor=STRANGER)
    assert backends(target_dsn, pids) == pids  # refused: nothing touched

    pending = await engine.request(
        key, book, "terminate_idle", params={"minutes": "0"}, actor=COMMANDER
    )
    assert pending.status == "pending"
    assert pending.ready
    assert not pending.two_person
    assert pending.preview is not None
    assert pending.preview.step == "idle_connections"
    listed = {row["pid"] for row in pending.preview.rows_as_dicts(200)}
    assert pids <= listed
    assert backends(target_dsn, pids) == pids  # a preview changes nothing

    result = await engine.confirm(pending.run_id, actor=COMMANDER)
    assert result.error is None
    assert result.mode == "mitigation"
    terminated = {row["pid"] for row in result.rows_as_dicts(200) if row["terminated"]}
    assert pids <= terminated
    for _ in range(50):
        if not backends(target_dsn, pids):
            break
        await asyncio.sleep(0.1)
    assert backends(target_dsn, pids) == set()
    with pytest.raises(psycopg.OperationalError):
        await idle_connections[0].execute("SELECT 1")

    events = [e for e in await incidents.timeline(key) if e.kind.startswith("step_")]
    assert [(e.kind, e.data["step"], e.data["kind"]) for e in events] == [
        ("step_run", "connections_by_state", "diagnostic"),
        ("step_refused", "terminate_idle", "mitigation"),
        ("step_run", "idle_connections", "diagnostic"),
        ("step_requested", "terminate_idle", "mitigation"),
        ("step_run", "terminate_idle", "mitigation"),
    ]
    run = events[-1].data
    assert run["run_id"] == pending.run_id
    assert run["params"] == {"minutes": 0}
    assert run["requested_by"] == run["confirmed_by"] == COMMANDER
    assert run["target"] == "main"
    assert run["grade"] == "info"
    assert {r["pid"] for r in run["rows"]} & pids
    assert events[1].actor == STRANGER
    assert "allowed to incident roles commander" in (events[1].data["summary"])
    stored = {r.id: r for r in await engine.runs(key)}[pending.run_id]
    assert stored.status == "done"
    assert stored.digest == result.output_digest
    assert stored.started_at is not None
    assert stored.finished_at is not None


@SQLITE_STORE
async def test_locks_show_the_pair_and_cancel_frees_it(
    engine: Runbooks, incident: Incident, target_dsn: str
) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as admin:
        admin.execute("CREATE TABLE IF NOT EXISTS lock_demo (id int PRIMARY KEY)")
    blocker = await psycopg.AsyncConnection.connect(
        target_dsn, autocommit=True, application_name="blocker"
    )
    blocked = await psycopg.AsyncConnection.connect(
        target_dsn, autocommit=True, application_name="blocked"
    )
    blocker_pid, blocked_pid = blocker.info.backend_pid, blocked.info.backend_pid
    holding = asyncio.create_task(
        blocker.execute("LOCK TABLE lock_demo IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30)")
    )
    try:
        await _until(
            target_dsn,
            "SELECT 1 FROM pg_locks WHERE pid = %s AND granted AND mode = 'AccessExclusiveLock'",
            blocker_pid,
        )
        waiting = asyncio.create_task(blocked.execute("SELECT count(*) FROM lock_demo"))
        await _until(
            target_dsn, "SELECT 1 WHERE %s = ANY(pg_blocking_pids(%s))", blocker_pid, blocked_pid
        )

        (pairs,) = await engine.diagnose(
            incident.key, "db-locks", "blocking_pairs", actor=COMMANDER
        )
        rows = pairs.rows_as_dicts()
        assert [(r["blocked_pid"], r["blocking_pid"]) for r in rows] == [(blocked_pid, blocker_pid)]
        assert rows[0]["blocked_query"] == "SELECT count(*) FROM lock_demo"
        assert pairs.grade is Grade.YELLOW
        assert "blocked pairs = 1" in pairs.reason

        pending = await engine.request(
            incident.key,
            "db-locks",
            "cancel_backend",
            params={"pid": str(blocker_pid)},
            actor=COMMANDER,
        )
        assert pending.preview is not None
        (shown,) = pending.preview.rows_as_dicts()
        assert shown["pid"] == blocker_pid
        assert shown["blocking"] == [blocked_pid]

        result = await engine.confirm(pending.run_id, actor=COMMANDER)
        assert result.rows_as_dicts()[0]["cancelled"] is True
        await asyncio.wait_for(waiting, timeout=5)  # the waiter got its lock
        with pytest.raises(psycopg.errors.QueryCanceled):
            await holding
        (after,) = await engine.diagnose(
            incident.key, "db-locks", "blocking_pairs", actor=COMMANDER
        )
        assert after.rows == []
        assert after.grade is Grade.GREEN
    finally:
        holding.cancel()
        await blocker.close()
        await blocked.close()


async def _until(dsn: str, query: str, *args: object) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if conn.execute(query, args).fetchone():
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {query}")


@SQLITE_STORE
async def test_a_diagnostic_past_its_timeout_leaves_nothing_running(
    probes: Runbooks, incident: Incident, target_dsn: str
) -> None:
    start = time.monotonic()
    (result,) = await probes.diagnose(incident.key, "probes", "sleep", actor=COMMANDER)
    assert time.monotonic() - start < 4
    assert result.grade is Grade.ERROR
    assert result.error is not None
    assert "timed out after 1s" in result.error
    assert "cancelled" in result.error
    assert active_queries(target_dsn, "timeout-probe-marker") == []
    (event,) = [e for e in await probes.incidents.timeline(incident.key) if e.kind == "step_run"]
    assert event.data["grade"] == "error"
    assert "timed out" in event.data["summary"]


async def test_the_client_cancels_on_the_server_when_the_server_does_not(
    target_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RB_TEST_PG", target_dsn)
    (book,) = load_runbooks([write_runbook(tmp_path, PROBES.replace("timeout: 1s", "timeout: 6s"))])
    step = book.diagnostic("sleep")
    # The server's statement_timeout is 6 s; the client gives up after 1 s and must cancel.
    kind = PostgresKind(grace_s=-5.0)
    call = StepCall(
        runbook="probes",
        step=step,
        spec=step.spec,
        target_name="main",
        target=PostgresTarget(dsn_env="RB_TEST_PG"),
        params=coerce_all(step.params, {}),
        mitigation=False,
        timeout=step.timeout_s,
    )
    start = time.monotonic()
    with pytest.raises(StepFailed, match="cancelled on the server"):
        await kind.run(call)
    assert time.monotonic() - start < 4
    assert active_queries(target_dsn, "timeout-probe-marker") == []


@SQLITE_STORE
async def test_hostile_parameters_are_bound_or_rejected_never_run(
    probes: Runbooks, incident: Incident, target_dsn: str
) -> None:
    for value in [
        "1; DROP TABLE victims",
        "'); DROP TABLE victims; --",
        'x"; DROP TABLE victims',
        "ünïcødé ☃ 'quoted' \\ $$ %s %(app)s {table}",
    ]:
        (result,) = await probes.diagnose(
            incident.key, "probes", "by_app", params={"app": value}, actor=COMMANDER
        )
        assert result.error is None, result.error
        assert result.rows_as_dicts() == [{"n": 0, "asked": value}]
    (counted,) = await probes.diagnose(
        incident.key, "probes", "count_rows", params={"table": "public.victims"}, actor=COMMANDER
    )
    assert counted.rows == [[1]]
    for table in ["victims; DROP TABLE victims", 'victims"', "tablé", "victims --", "1"]:
        with pytest.raises(InvalidParameter, match="not a table name"):
            await probes.diagnose(
                incident.key, "probes", "count_rows", params={"table": table}, actor=COMMANDER
            )
    with pytest.raises(InvalidParameter, match="minutes: '1; DROP TABLE victims' is not a whole"):
        await probes.request(
            incident.key,
            "db-connection-exhaustion",
            "terminate_idle",
            params={"minutes": "1; DROP TABLE victims"},
            actor=COMMANDER,
        )
    with psycopg.connect(target_dsn) as conn:
        assert conn.execute("SELECT name FROM victims").fetchall() == [("still here",)]
    refused = [r for r in await probes.runs(incident.key) if r.status == "refused"]
    assert len(refused) == 6
    assert refused[-1].params == {"minutes": "1; DROP TABLE victims"}


@SQLITE_STORE
async def test_diagnostics_are_read_only_and_errors_are_results(
    probes: Runbooks,
    incident: Incident,
    pg_server: str,
    target_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (write,) = await probes.diagnose(incident.key, "probes", "write", actor=COMMANDER)
    assert write.grade is Grade.ERROR
    assert "diagnostics are read-only" in (write.error or "")
    with psycopg.connect(target_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM victims").fetchone() == (1,)

    role = f"warroom_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        monkeypatch.setenv("RB_TEST_PG", target_dsn.replace("postgres@", f"{role}@"))
        (denied,) = await probes.diagnose(
            incident.key, "probes", "count_rows", params={"table": "victims"}, actor=COMMANDER
        )
        assert denied.grade is Grade.ERROR
        assert denied.error == (
            "permission denied on postgres target 'main': permission denied for table victims"
        )
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")

    monkeypatch.setenv("RB_TEST_PG", "postgresql://postgres@127.0.0.1:1/nowhere")
    (down,) = await probes.diagnose(
        incident.key, "probes", "by_app", params={"app": "x"}, actor=COMMANDER
    )
    assert down.grade is Grade.ERROR
    assert (down.error or "").startswith("cannot connect to postgres target 'main'")
    monkeypatch.delenv("RB_TEST_PG")
    (unset,) = await probes.diagnose(
        incident.key, "probes", "by_app", params={"app": "x"}, actor=COMMANDER
    )
    assert unset.error == "environment variable RB_TEST_PG (the Postgres DSN) is not set"


@SQLITE_STORE
async def test_output_is_redacted(
    probes: Runbooks, incident: Incident, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trust authentication ignores the password, so the DSN can carry one to be redacted.
    monkeypatch.setenv("RB_TEST_PG", target_dsn.replace("postgres@", "postgres:tr1ckyPass@"))
    (result,) = await probes.diagnose(incident.key, "probes", "secrets", actor=COMMANDER)
    assert result.error is None
    assert result.rows == [
        [f"postgresql://app:{MASK}@db/x", f"Authorization: {MASK}", f"the password is {MASK}"]
    ]
    event = next(e for e in await probes.incidents.timeline(incident.key) if e.kind == "step_run")
    assert "hunter22" not in str(event.data)
    assert "tr1ckyPass" not in str(event.data)


@SQLITE_STORE
async def test_every_builtin_postgres_diagnostic_runs(
    engine: Runbooks, incident: Incident, target_dsn: str
) -> None:
    with psycopg.connect(target_dsn) as conn:
        pid = conn.info.backend_pid
        params = {"table": "victims", "pid": str(pid)}
        for book in engine.runbooks:
            for step in book.diagnostics:
                if step.kind != "postgres":
                    continue
                mine = {k: v for k, v in params.items() if k in step.params}
                (result,) = await engine.diagnose(
                    incident.key, book.id, step.id, params=mine, actor=COMMANDER
                )
                assert result.error is None, f"{book.id}/{step.id}: {result.error}"
                if step.spec.requires_extension:
                    assert result.grade is Grade.INFO
                    assert "pg_stat_statements is not installed" in result.summary
    (stats,) = await engine.diagnose(
        incident.key,
        "db-performance-degradation",
        "table_stats",
        params={"table": "victims"},
        actor=COMMANDER,
    )
    assert stats.rows_as_dicts()[0]["tablename"] == "victims"


@SQLITE_STORE
async def test_vacuum_analyze_a_table(
    engine: Runbooks, incident: Incident, target_dsn: str
) -> None:
    pending = await engine.request(
        incident.key,
        "db-performance-degradation",
        "vacuum_analyze",
        params={"table": "victims"},
        actor=COMMANDER,
    )
    assert pending.preview is not None
    assert pending.preview.rows_as_dicts()[0]["n_live_tup"] >= 0
    result = await engine.confirm(pending.run_id, actor=COMMANDER)
    assert result.error is None
    assert result.summary == "VACUUM"
    await _until(
        target_dsn,
        "SELECT 1 FROM pg_stat_user_tables WHERE relname = %s AND last_vacuum IS NOT NULL",
        "victims",
    )


def test_the_builtin_kind_is_registered() -> None:
    assert isinstance(KINDS["postgres"], PostgresKind)
    assert RunbookSettings().targets == TargetsConfig()
