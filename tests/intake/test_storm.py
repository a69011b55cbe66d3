"""An alert storm against a real server: one incident per group, every alert stored once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from bench._drill import wait_delivered
from bot.store.db import sync_url
from tests.conftest import LiveServer

GROUPS = 20
PER_GROUP = 100


def am_body(group: int, n: int) -> dict:
    labels = {"alertname": f"Storm{group}", "instance": f"host-{n}", "service": f"svc{group}"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Storm{group}"}}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "warroom",
        "groupLabels": {"alertname": f"Storm{group}"},
        "commonLabels": {"alertname": f"Storm{group}"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"storm {group}"},
                "startsAt": datetime(2026, 11, 26, 9, 0, tzinfo=UTC).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": f"{group:04d}{n:012d}",
            }
        ],
    }


async def storm(url: str) -> list[int]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(32)

        async def send(group: int, n: int) -> int:
            async with gate:
                answer = await client.post("/webhooks/alertmanager", json=am_body(group, n))
                return answer.status_code

        jobs = [send(g, n) for n in range(PER_GROUP) for g in range(GROUPS)]
        return await asyncio.gather(*jobs)


def test_storm_of_2000_alerts_in_20_groups(live_server: LiveServer, database_url: str) -> None:
    codes = asyncio.run(storm(live_server.url))
    # 200 once folded, 202 once journaled with the fold behind: each stored either way.
    assert codes.count(200) + codes.count(202) == GROUPS * PER_GROUP, sorted(set(codes))
    assert wait_delivered(sync_url(database_url), timeout=120), "the journal was not folded"
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as conn:
        incidents = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
        alerts = conn.execute(sa.text("SELECT count(*) FROM alert")).scalar_one()
        distinct = conn.execute(sa.text("SELECT count(DISTINCT fingerprint) FROM alert")).scalar()
        per_incident = (
            conn.execute(sa.text("SELECT count(*) FROM alert GROUP BY incident_id")).scalars().all()
        )
        counts = conn.execute(sa.text("SELECT max(count) FROM alert")).scalar_one()
    engine.dispose()
    assert incidents == GROUPS
    assert alerts == distinct == GROUPS * PER_GROUP
    assert sorted(per_incident) == [PER_GROUP] * GROUPS
    assert counts == 1
