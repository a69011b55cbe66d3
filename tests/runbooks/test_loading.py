"""Runbook files are validated when loaded, and every mistake is reported as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.runbooks import KINDS, RunbookSettings, builtin_dir, load_configured, load_runbooks
from bot.runbooks.model import Mitigation
from bot.runbooks.targets import PostgresTarget, TargetsConfig

from .conftest import write_runbook

GOOD = """\
id: custom
title: Custom checks
match:
  alerts: [Custom]
  labels: ["service=~api|web"]
diagnostics:
  - id: idle
    title: Idle connections
    kind: postgres
    target: main
    params:
      minutes: {type: int, default: 10, min: 0, max: 1440}
    sql: SELECT pid FROM pg_stat_activity WHERE state_change < now() - make_interval(mins => %(minutes)s::int)
mitigations:
  - id: terminate
    title: Terminate
    kind: postgres
    target: main
    preview: idle
    params:
      minutes: {type: int, default: 10, min: 0, max: 1440}
    sql: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state_change < now() - make_interval(mins => %(minutes)s::int)
"""  # noqa: E501


def problems_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_runbooks([path], **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_the_built_in_runbooks_load_and_cover_the_seeds() -> None:
    books = {rb.id: rb for rb in load_runbooks([builtin_dir()])}
    assert set(books) == {
        "db-connection-exhaustion",
        "db-high-latency",
        "db-performance-degradation",
        "db-locks",
        "db-replication-lag",
        "cache-failure",
        "high-error-rate",
        "morning-health-check",
        "application-rollback",
    }
    flush = books["cache-failure"].mitigation("flushdb")
    assert flush.two_person
    assert flush.preview == "keyspace"
    assert books["db-connection-exhaustion"].mitigation("terminate_idle").preview == (
        "idle_connections"
    )
    vacuum = books["db-performance-degradation"].mitigation("vacuum_analyze")
    assert vacuum.spec.autocommit
    assert vacuum.params["table"].type == "identifier"
    for book in books.values():
        assert book.source.endswith(f"{book.id}.yaml")
        for step in [*book.diagnostics, *book.mitigations]:
            assert step.spec is not None
        for mitigation in book.mitigations:
            assert isinstance(mitigation, Mitigation)
            assert mitigation.preview is not None, f"{book.id}/{mitigation.id} has no preview"
            assert mitigation.allowed.roles == ["commander"]


def test_a_good_file_loads(tmp_path: Path) -> None:
    (book,) = load_runbooks([write_runbook(tmp_path, GOOD)])
    assert book.diagnostic("idle").params["minutes"].default == 10
    assert book.mitigation("terminate").timeout.total_seconds() == 60


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "    kind: postgres\n    target: main\n    params",
                "    kind: postgress\n    target: main\n    params",
            ),
            ":9: custom.diagnostics.idle.kind: unknown kind 'postgress'",
        ),
        (
            (
                "minutes: {type: int, default: 10, min: 0, max: 1440}\n    sql: SELECT pid",
                "minutes: {type: int, default: 5000, min: 0, max: 1440}\n    sql: SELECT pid",
            ),
            ":12: diagnostics.0.params.minutes: 5000 is above the maximum 1440",
        ),
        (
            ("=> %(minutes)s::int)\nmitigations", "=> %(minuets)s::int)\nmitigations"),
            ":13: custom.diagnostics.idle.sql: %(minuets)s names no declared parameter",
        ),
        (
            ("SELECT pid FROM", "SELECT 'x%' AS pid FROM"),
            ":13: custom.diagnostics.idle.sql: a '%' that is not a %(name)s placeholder",
        ),
        (
            ("SELECT pid FROM", "DELETE FROM x; SELECT pid FROM"),
            ":13: custom.diagnostics.idle.sql: write exactly one SQL statement",
        ),
        (
            ("preview: idle", "preview: idel"),
            ":19: custom.mitigations.terminate.preview: Runbook 'custom' has no diagnostic 'idel'",
        ),
        (
            ("  - id: terminate", "  - id: idle"),
            ":15: custom.mitigations.idle.id: another step of this runbook has this id",
        ),
        (
            (
                "    title: Idle connections\n",
                "    title: Idle connections\n    two_person: true\n",
            ),
            ":9: custom.diagnostics.idle.two_person: only mitigations have this key",
        ),
        (
            ("    title: Idle connections\n", "    title: Idle connections\n    colour: red\n"),
            ":9: custom.diagnostics.idle.colour: unknown key for a postgres step",
        ),
        (
            ("    title: Terminate\n", "    title: Terminate\n    allowed: {roles: commander}\n"),
            ":17: mitigations.0.allowed.roles: Input should be a valid list",
        ),
        (
            ('labels: ["service=~api|web"]', 'labels: ["service~api"]'),
            ":5: match.labels: 'service~api' is not a label matcher",
        ),
        (("id: custom", "id: Custom Checks"), ":1: id: ids are lowercase letters"),
        (
            (
                "    title: Idle connections\n",
                "    title: Idle connections\n    thresholds: [{metric: rows, green: fast}]\n",
            ),
            ":9: diagnostics.0.thresholds.0.green: 'fast' is not a condition",
        ),
        (
            ("    title: Idle connections\n", "    title: Idle connections\n    timeout: 1h\n"),
            ":9: diagnostics.0.timeout: timeout must be between 100ms and 10m",
        ),
    ],
)
def test_mistakes_are_reported_with_file_and_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in GOOD, change[0]
    path = write_runbook(tmp_path, GOOD.replace(change[0], change[1], 1), "custom.yaml")
    found = problems_of(path)
    assert any(p.startswith(str(path)) and expected in p for p in found), found


def test_syntax_errors_and_duplicate_keys_have_lines(tmp_path: Path) -> None:
    broken = write_runbook(tmp_path, "id: x\ntitle: [unclosed\n", "broken.yaml")
    (problem,) = problems_of(broken)
    assert problem.startswith(f"{broken}:3: (syntax): not valid YAML")
    twice = write_runbook(tmp_path, GOOD.replace("title: Custom checks", "title: A\ntitle: B"))
    assert any(":3: title: duplicate key" in p for p in problems_of(twice))
    scalar = write_runbook(tmp_path, "just text\n")
    assert any("must be a runbook or a list of them" in p for p in problems_of(scalar))
    assert any("no such file" in p for p in problems_of(tmp_path / "missing.yaml"))


def test_every_problem_of_every_file_at_once(tmp_path: Path) -> None:
    write_runbook(tmp_path, GOOD.replace("kind: postgres", "kind: nope"), "a.yaml")
    write_runbook(tmp_path, GOOD, "b.yaml")
    write_runbook(tmp_path, GOOD, "c.yaml")
    found = problems_of(tmp_path)
    assert sum("unknown kind 'nope'" in p for p in found) == 2
    assert any(
        p.startswith(f"{tmp_path / 'c.yaml'}:1: id: runbook 'custom' is also defined at")
        and p.endswith("b.yaml:1")
        for p in found
    ), found


def test_unknown_targets_are_reported_when_targets_are_known(tmp_path: Path) -> None:
    path = write_runbook(tmp_path, GOOD, "custom.yaml")
    targets = TargetsConfig(postgres={"primary": PostgresTarget(dsn_env="X")})
    found = problems_of(path, targets=targets)
    assert any(
        ":10: custom.diagnostics.idle.target: no postgres target 'main' in "
        "runbooks.targets.postgres (configured: primary)" in p
        for p in found
    ), found


REDIS_STEP = """\
id: cache
title: Cache
{section}:
  - id: step
    title: Step
    kind: redis
    target: cache
    command: {command}
"""


@pytest.mark.parametrize(
    "command",
    [
        "KEYS *",
        "CONFIG GET requirepass",
        "CONFIG SET requirepass x",
        "FLUSHALL",
        "EVAL x 0",
        "DEBUG SLEEP 10",
        "INFO secrets",
        "SLOWLOG GET 100000",
        "SHUTDOWN",
        "CLIENT KILL 1.2.3.4:5",
    ],
)
def test_a_redis_command_outside_the_allow_list_is_rejected(tmp_path: Path, command: str) -> None:
    path = write_runbook(tmp_path, REDIS_STEP.format(section="mitigations", command=command))
    found = problems_of(path)
    assert any(
        ":8: " in p and ("allow-list" in p or "not an allowed" in p or "must be" in p)
        for p in found
    ), found


def test_redis_writes_only_as_mitigations(tmp_path: Path) -> None:
    for command in ["FLUSHDB", "CLIENT KILL ID 7", "SLOWLOG RESET", "CONFIG SET maxclients 100"]:
        path = write_runbook(tmp_path, REDIS_STEP.format(section="diagnostics", command=command))
        assert any(
            ":8: cache.diagnostics.step.command:" in p and "declare it as a mitigation" in p
            for p in problems_of(path)
        )
        load_runbooks(
            [write_runbook(tmp_path, REDIS_STEP.format(section="mitigations", command=command))]
        )


def test_http_and_webhook_rules(tmp_path: Path) -> None:
    post = """\
id: web
title: Web
diagnostics:
  - {id: poke, title: Poke, kind: http, target: app, method: POST, path: /restart}
  - {id: escape, title: Escape, kind: http, target: app, path: "http://evil.example/x"}
  - {id: up, title: Up, kind: http, target: app, path: "/a/../../admin"}
  - {id: hook, title: Hook, kind: webhook, target: ops, action: rollback}
"""
    found = problems_of(write_runbook(tmp_path, post))
    assert any(":4: web.diagnostics.poke.method: POST may change things" in p for p in found)
    assert any(":5: web.diagnostics.escape.path: path must start with /" in p for p in found)
    assert any(":6: web.diagnostics.up.path: path must start with /" in p for p in found)
    assert any(":7: web.diagnostics.hook.kind: a webhook step changes things" in p for p in found)


def test_your_runbook_replaces_a_built_in_one_with_the_same_id(tmp_path: Path) -> None:
    mine = write_runbook(tmp_path, GOOD.replace("id: custom", "id: db-locks"))
    targets = TargetsConfig(postgres={"main": PostgresTarget(dsn_env="X")})
    books = {b.id: b for b in load_configured(RunbookSettings(paths=[mine], targets=targets))}
    assert books["db-locks"].title == "Custom checks"
    assert "cache-failure" in books
    assert load_configured(RunbookSettings(builtin=False)) == []
    assert set(KINDS) >= {"postgres", "redis", "http", "webhook"}
