"""The redis kind against a real server: computed hit rate and memory, a two-person FLUSHDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.errors import ConfigError
from bot.incidents.lifecycle import Incidents
from bot.runbooks import Runbooks, load_runbooks
from bot.runbooks.errors import ApprovalRequired, NotAllowed, RunNotPending, SelfApproval
from bot.runbooks.grading import Grade
from bot.store.models import Incident

from .conftest import COMMANDER, FLUSH_REDIS_URL, SECOND, SQLITE_STORE, STRANGER, write_runbook

pytestmark = pytest.mark.usefixtures("redis_url")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"warroom-test:{uuid.uuid4().hex}:"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}*"))
    if keys:
        client.delete(*keys)


@SQLITE_STORE
async def test_hit_rate_and_memory_come_from_the_real_server(
    engine: Runbooks, incident: Incident, redis_url: str, prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}hot", "1")
    before = client.info("stats")
    for _ in range(30):
        client.get(f"{prefix}hot")
    for _ in range(10):
        client.get(f"{prefix}cold")

    (hits,) = await engine.diagnose(incident.key, "cache-failure", "hit_rate", actor=COMMANDER)
    after = client.info("stats")
    values = hits.values
    assert before["keyspace_hits"] + 30 <= values["keyspace_hits"] <= after["keyspace_hits"]
    assert before["keyspace_misses"] + 10 <= values["keyspace_misses"] <= after["keyspace_misses"]
    total = values["keyspace_hits"] + values["keyspace_misses"]
    assert values["hit_rate_pct"] == round(100 * values["keyspace_hits"] / total, 2)
    assert hits.rows[0] == ["hit_rate_pct", values["hit_rate_pct"]]
    assert f"hit rate {values['hit_rate_pct']}%" in hits.summary
    expected = (
        Grade.GREEN
        if values["hit_rate_pct"] > 70
        else Grade.RED
        if values["hit_rate_pct"] < 50
        else Grade.YELLOW
    )
    assert hits.grade is expected
    assert "cache hit rate %" in hits.reason

    (memory,) = await engine.diagnose(incident.key, "cache-failure", "memory", actor=COMMANDER)
    real = client.info("memory")
    assert memory.values["used_memory"] > 0
    assert abs(memory.values["used_memory"] - real["used_memory"]) < real["used_memory"] * 0.5
    human = dict(memory.rows)["used_memory_human"]
    assert human.endswith(("B", "K", "M", "G"))
    assert f"memory {human}" in memory.summary
    if real["maxmemory"] == 0:  # no limit: nothing to grade against
        assert memory.values["used_memory_pct"] is None
        assert memory.grade is Grade.INFO
    else:
        assert memory.values["used_memory_pct"] == round(
            100 * memory.values["used_memory"] / real["maxmemory"], 2
        )


@SQLITE_STORE
async def test_every_builtin_redis_diagnostic_runs(engine: Runbooks, incident: Incident) -> None:
    results = await engine.diagnose(incident.key, "cache-failure", actor=COMMANDER)
    assert [r.step for r in results] == [s.id for s in engine.get("cache-failure").diagnostics]
    for result in results:
        assert result.error is None, f"{result.step}: {result.error}"
    ping = results[0]
    assert ping.rows[0][0] == "PONG"
    assert ping.grade is Grade.GREEN
    clients = next(r for r in results if r.step == "client_list")
    assert clients.values["clients"] >= 1
    assert "addr" in clients.columns


async def test_flushdb_waits_for_a_second_persons_approval(
    engine: Runbooks,
    incident: Incident,
    incidents: Incidents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RB_TEST_REDIS", FLUSH_REDIS_URL)  # the cache target, on a scratch db
    scratch = redis.Redis.from_url(FLUSH_REDIS_URL)
    scratch.mset({f"stale:{i}": "corrupted" for i in range(25)})

    with pytest.raises(NotAllowed):
        await engine.request(incident.key, "cache-failure", "flushdb", actor=STRANGER)
    pending = await engine.request(incident.key, "cache-failure", "flushdb", actor=COMMANDER)
    assert pending.two_person
    assert not pending.ready
    assert pending.preview is not None
    assert pending.preview.values["keys"] >= 25

    with pytest.raises(ApprovalRequired, match="needs a second person's approval"):
        await engine.confirm(pending.run_id, actor=COMMANDER)
    with pytest.raises(SelfApproval, match="a second person must approve it"):
        await engine.approve(pending.run_id, actor=COMMANDER)
    with pytest.raises(NotAllowed, match="You may not approve cache-failure/flushdb"):
        await engine.approve(pending.run_id, actor=STRANGER)
    assert scratch.dbsize() >= 25  # nothing flushed yet

    approved = await engine.approve(pending.run_id, actor=SECOND)  # granted in the settings
    assert approved.status == "approved"
    assert approved.ready
    assert approved.approved_by == [SECOND]
    assert approved.preview is not None
    assert approved.preview.values["keys"] >= 25
    with pytest.raises(RunNotPending, match=f"already approved by {SECOND}: confirm it"):
        await engine.approve(pending.run_id, actor=SECOND)
    result = await engine.confirm(pending.run_id, actor=COMMANDER)
    assert result.error is None
    assert result.values["keys_after"] == 0
    assert scratch.dbsize() == 0
    with pytest.raises(RunNotPending, match="is done"):
        await engine.confirm(pending.run_id, actor=COMMANDER)

    events = [e for e in await incidents.timeline(incident.key) if e.kind.startswith("step_")]
    assert [e.kind for e in events] == [
        "step_refused",
        "step_run",
        "step_requested",
        "step_refused",
        "step_refused",
        "step_refused",
        "step_approved",
        "step_refused",
        "step_run",
        "step_refused",
    ]
    final = events[-2].data
    assert final["approved_by"] == [SECOND]
    assert final["confirmed_by"] == COMMANDER
    assert final["requested_by"] == COMMANDER
    assert final["step"] == "flushdb"
    assert events[6].actor == SECOND


@SQLITE_STORE
async def test_a_down_redis_is_a_result_not_a_crash(
    engine: Runbooks, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RB_TEST_REDIS", "redis://127.0.0.1:1/0")
    (result,) = await engine.diagnose(incident.key, "cache-failure", "ping", actor=COMMANDER)
    assert result.grade is Grade.ERROR
    assert (result.error or "").startswith("cannot reach redis target 'cache'")


def test_a_runbook_using_a_command_outside_the_allow_list_is_rejected(tmp_path: Path) -> None:
    path = write_runbook(
        tmp_path,
        """\
id: sneaky
title: Sneaky
diagnostics:
  - {id: keys, title: All keys, kind: redis, target: cache, command: "KEYS *"}
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_runbooks([path])
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{path}:4: sneaky.diagnostics.keys.command: 'KEYS *' is not in the Redis allow-list"
    )
