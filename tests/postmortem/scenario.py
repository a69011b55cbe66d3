"""One incident driven through the real core, step by step, on the fixed clock.

Clock (UTC; the fixture's T0 is 2026-11-26 10:00):

    09:57  HighQueryLatency starts (the alert's own start time): detection
    10:00  the alert arrives: INC-0001 declared, P2 by rule, not acknowledged
    10:04  acknowledged by U_ALICE; U_ALICE commander, U_BOB communications
    10:06  CriticalConnectionPoolUtilization fires: P2 → P1 by rule
    10:07  diagnostics: connection count (red), replication lag (green)
    10:10  status identified
    10:12  update by U_BOB (status mitigating)
    10:14  mitigation app/restart-gunicorn refused
    10:15  mitigation db-connections/terminate-idle approved by U_CAROL
    10:16  … and run, confirmed by U_ALICE
    10:24  CriticalConnectionPoolUtilization resolved
    10:25  status monitoring: mitigated
    10:30  HighQueryLatency resolved (all alerts resolved)
    10:31  severity P1 → P2 by U_ALICE
    10:35  two follow-ups, a note and a pinned message
    10:40  update by U_BOB
    10:45  resolved by U_ALICE with root cause and resolution; follow-up #1 done
    10:50  the post-mortem is drafted
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.clock import FixedClock
from bot.core import Core
from bot.incidents.lifecycle import Change
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert
from bot.intake.fold import Endpoint
from bot.store.models import FollowUp

from ..conftest import T0

AM = Endpoint(name="alertmanager", source="alertmanager")
KEY = "INC-0001"


def alert(name: str, summary: str, *, started_min: int, status: str = "firing") -> NormalizedAlert:
    return NormalizedAlert(
        source="alertmanager",
        fingerprint=f"fp-{name}",
        status=AlertStatus(status),
        labels={"alertname": name, "service": "orders-db"},
        annotations={"summary": summary},
        summary=summary,
        group_key="orders-db",
        starts_at=T0 + timedelta(minutes=started_min),
        links={
            "graph": f"http://prometheus.local/graph?g0.expr={name}",
            "runbook": "https://wiki.example.com/runbooks/orders-db#pool",
        },
    )


LATENCY = ("HighQueryLatency", "Query latency above 2 s on orders-db", -3)
POOL = ("CriticalConnectionPoolUtilization", "Connection pool 98% used on orders-db", 5)


async def send(core: Core, spec: tuple[str, str, int], key: str, status: str = "firing") -> None:
    name, summary, started = spec
    item = alert(name, summary, started_min=started, status=status)
    await core.intake.receive(AM, Delivery(source="alertmanager", alerts=(item,)), delivery_key=key)


async def step(core: Core, event: str, actor: str, text: str, **data: Any) -> None:
    """A runbook step's timeline event, as the runbook engine writes it."""
    base: dict[str, Any] = {
        "run_id": "",
        "runbook": "",
        "step": "",
        "kind": "diagnostic",
        "target": "",
        "params": {},
        "grade": None,
        "summary": "",
        "rows": [],
        "duration_ms": None,
        "requested_by": actor,
        "approved_by": [],
        "confirmed_by": None,
    }
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, KEY)
        await core.incidents.record(session, incident, actor, [Change(event, text, base | data)])


async def full_incident(core: Core, clock: FixedClock) -> None:
    worker = core.delivery()

    async def minutes(n: int) -> None:
        """Deliver what is due now, let ``n`` minutes pass, deliver what came due since.

        A second in, deliver again: the broadcast announcement waits (one second at a
        time) for the incident's channel, which the worker may or may not have opened
        first; either way it is sent in the same minute, so the draft does not change.
        """
        await worker.drain()
        clock.advance(timedelta(seconds=1))
        await worker.drain()
        clock.advance(timedelta(minutes=n, seconds=-1))
        await worker.drain()

    await send(core, LATENCY, "d1")  # 10:00
    await worker.drain()
    await minutes(4)  # 10:04
    await core.incidents.acknowledge(KEY, actor="U_ALICE")
    await core.incidents.assign(KEY, "commander", "U_ALICE", actor="U_ALICE")
    await core.incidents.assign(KEY, "communications", "U_BOB", actor="U_ALICE")
    await minutes(2)  # 10:06
    await send(core, POOL, "d2")
    await minutes(1)  # 10:07
    await step(
        core,
        "step_run",
        "U_ALICE",
        "ran db-connections/connection-count: red",
        run_id="run-1",
        runbook="db-connections",
        step="connection-count",
        target="orders-db",
        params={"database": "orders"},
        grade="red",
        summary="connections were at 98% of max_connections at 10:07",
        columns=["state", "count"],
        rows=[
            {"state": "active", "count": 12},
            {"state": "idle in transaction", "count": 37},
            {"state": "idle", "count": 0},
        ],
        duration_ms=84,
    )
    await step(
        core,
        "step_run",
        "U_ALICE",
        "ran db-replication/lag: green",
        run_id="run-2",
        runbook="db-replication",
        step="lag",
        target="orders-db",
        grade="green",
        summary="replication lag 0.4 s on 2 replicas",
        rows=[{"replica": "10.0.0.12", "lag_s": 0.4}, {"replica": "10.0.0.13", "lag_s": 0.3}],
        duration_ms=51,
    )
    await minutes(3)  # 10:10
    await core.incidents.set_status(
        KEY, "identified", actor="U_ALICE", note="pool held by idle-in-transaction sessions"
    )
    await minutes(2)  # 10:12
    await core.updates.post(
        KEY,
        actor="U_BOB",
        status="mitigating",
        progress="terminating idle connections",
        impact="checkout fails for about 30% of users",
        eta="30 min",
    )
    await minutes(2)  # 10:14
    await step(
        core,
        "step_refused",
        "U_DAVE",
        "refused app/restart-gunicorn: U_DAVE may not confirm it",
        run_id="run-3",
        runbook="app",
        step="restart-gunicorn",
        kind="mitigation",
        target="orders-api",
        summary="U_DAVE is not allowed to confirm app/restart-gunicorn",
    )
    await minutes(1)  # 10:15
    terminate = {
        "run_id": "run-4",
        "runbook": "db-connections",
        "step": "terminate-idle",
        "kind": "mitigation",
        "target": "orders-db",
        "params": {"older_than_min": 5},
        "requested_by": "U_ALICE",
        "approved_by": ["U_CAROL"],
    }
    await step(
        core, "step_approved", "U_CAROL", "approved db-connections/terminate-idle", **terminate
    )
    await minutes(1)  # 10:16
    await step(
        core,
        "step_run",
        "U_ALICE",
        "ran db-connections/terminate-idle: green",
        **terminate,
        grade="green",
        summary="terminated 37 idle-in-transaction connections older than 5 min",
        rows=[{"pid": 4242, "usename": "orders", "state": "idle in transaction"}],
        duration_ms=230,
        confirmed_by="U_ALICE",
    )
    await minutes(8)  # 10:24
    await send(core, POOL, "d3", status="resolved")
    await minutes(1)  # 10:25
    await core.incidents.set_status(KEY, "monitoring", actor="U_ALICE")
    await minutes(5)  # 10:30
    await send(core, LATENCY, "d4", status="resolved")
    await minutes(1)  # 10:31
    await core.incidents.set_severity(
        KEY, "P2", actor="U_ALICE", reason="pool back under 60%; only batch jobs still slow"
    )
    await minutes(4)  # 10:35
    await core.incidents.add_follow_up(
        KEY, "Alert on idle-in-transaction sessions", actor="U_ALICE", owner="U_CAROL"
    )
    await core.incidents.add_follow_up(
        KEY, "Set idle_in_transaction_session_timeout on orders-db", actor="U_BOB"
    )
    await core.incidents.note(KEY, "deploy 4812 went out at 09:50", actor="U_CAROL")
    async with core.db.transaction() as session:
        incident = await core.incidents.lock_key(session, KEY)
        pin = {
            "author": "U_CAROL",
            "ts": "1795687200.000100",
            "permalink": "https://example.slack.com/archives/C1/p1795687200000100",
        }
        await core.incidents.record(
            session, incident, "U_CAROL", [Change("pinned", "pool graph: 98% at 10:07", pin)]
        )
    await minutes(5)  # 10:40
    await core.updates.post(
        KEY,
        actor="U_BOB",
        progress="pool at 40%, error rate back to baseline",
        impact="none for users; batch jobs slow",
        eta="resolve by 10:45",
    )
    await minutes(5)  # 10:45
    await core.incidents.resolve(
        KEY,
        actor="U_ALICE",
        summary="Checkout failed for a third of users for 45 minutes: "
        "orders-db ran out of connections.",
        root_cause="Deploy 4812 left transactions open on error paths; idle-in-transaction "
        "sessions filled the pool.",
        resolution="Terminated the idle sessions, rolled back deploy 4812.",
    )
    async with core.db.transaction() as session:
        done = await session.get(FollowUp, 1)
        assert done is not None
        done.status = "done"
        done.done_at = clock.now()
        session.add(done)
    await worker.drain()
    await minutes(5)  # 10:50
