"""Cancelling a pending mitigation: the requester or the commander may, nobody else; it is on
the timeline and the request can no longer be approved or confirmed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.commands.parse import CancelCmd, UsageError, parse
from bot.incidents.lifecycle import Incidents
from bot.runbooks import Runbooks
from bot.runbooks.errors import NotAllowed, RunNotPending
from bot.store.models import Incident

from .conftest import COMMANDER, SECOND, SQLITE_STORE, STRANGER, LocalService

REQUESTER = "U_REQUESTER"


async def _rollback(engine: Runbooks, incident: Incident, actor: str = COMMANDER) -> int:
    pending = await engine.request(
        incident.key,
        "application-rollback",
        "rollback",
        params={"to_version": "v40"},
        actor=actor,
        roles=["commander"],  # vouched for by the caller, as Slack's on-call lookups do
    )
    assert pending.status == "pending"
    return pending.run_id


@SQLITE_STORE
async def test_the_requester_cancels_and_nobody_can_confirm_it_after(
    engine: Runbooks, incident: Incident, incidents: Incidents, service: LocalService
) -> None:
    run_id = await _rollback(engine, incident, actor=REQUESTER)
    cancelled = await engine.cancel(run_id, actor=REQUESTER)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_by == REQUESTER

    with pytest.raises(RunNotPending, match=f"Run #{run_id} is cancelled"):
        await engine.confirm(run_id, actor=COMMANDER)
    with pytest.raises(RunNotPending, match="nothing to cancel"):
        await engine.cancel(run_id, actor=REQUESTER)
    assert service.hooks == []  # the rollback was never sent

    stored = {r.id: r for r in await engine.runs(incident.key)}[run_id]
    assert stored.status == "cancelled"
    assert stored.summary == f"cancelled by {REQUESTER}"
    events = [e for e in await incidents.timeline(incident.key) if e.kind == "step_cancelled"]
    (event,) = events
    assert event.actor == REQUESTER
    assert event.text.startswith("cancelled application-rollback/rollback (to_version=v40)")
    assert event.data["run_id"] == run_id
    assert event.data["status"] == "cancelled"


@SQLITE_STORE
async def test_the_commander_may_cancel_someone_elses_request_a_stranger_may_not(
    engine: Runbooks, incident: Incident, incidents: Incidents
) -> None:
    run_id = await _rollback(engine, incident, actor=REQUESTER)
    with pytest.raises(NotAllowed) as refused:
        await engine.cancel(run_id, actor=STRANGER)
    assert str(refused.value) == (
        f"Only the requester ({REQUESTER}) or the incident commander ({COMMANDER}) "
        f"can cancel run #{run_id}."
    )
    assert (await engine.pending(run_id)).status == "pending"  # still waiting
    refusals = [e for e in await incidents.timeline(incident.key) if e.kind == "step_refused"]
    assert refusals[-1].actor == STRANGER
    assert "cancel refused" in refusals[-1].text

    cancelled = await engine.cancel(run_id, actor=COMMANDER)
    assert cancelled.cancelled_by == COMMANDER


@SQLITE_STORE
async def test_an_approved_two_person_request_can_be_cancelled_before_it_runs(
    engine: Runbooks, incident: Incident, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import FLUSH_REDIS_URL

    monkeypatch.setenv("RB_TEST_REDIS", FLUSH_REDIS_URL)
    pending = await engine.request(incident.key, "cache-failure", "flushdb", actor=COMMANDER)
    await engine.approve(pending.run_id, actor=SECOND)
    await engine.cancel(pending.run_id, actor=COMMANDER)
    with pytest.raises(RunNotPending, match="is cancelled"):
        await engine.confirm(pending.run_id, actor=COMMANDER)
    with pytest.raises(RunNotPending, match="is cancelled"):
        await engine.approve(pending.run_id, actor=SECOND)


@SQLITE_STORE
async def test_an_expired_request_says_so_instead_of_cancelling(
    engine: Runbooks, incident: Incident, clock: FixedClock
) -> None:
    run_id = await _rollback(engine, incident)
    clock.advance(timedelta(minutes=16))
    with pytest.raises(RunNotPending, match="expired"):
        await engine.cancel(run_id, actor=COMMANDER)
    assert (await engine.pending(run_id)).status == "refused"


def test_the_cancel_command_takes_a_run_id() -> None:
    assert parse("cancel 12") == CancelCmd(12)
    assert parse("cancel #12") == CancelCmd(12)
    for wrong in ("cancel", "cancel twelve", "cancel 1 2"):
        with pytest.raises(UsageError, match="takes the run id of a pending mitigation"):
            parse(wrong)
