"""Fault drills: scripts that exit non-zero on any loss or duplicate.

    python -m bench.drills kill [--alerts 3000 --groups 30]

kill: a storm against a real `warroom serve` (Postgres, the fake Slack with Slack's rate
limits); the server is killed with SIGKILL mid-storm and restarted; the senders retry what did
not get a 2xx, as Alertmanager does. Then: every alert that got a 2xx is stored exactly once,
every outbox row is delivered (none failed, none pending), no channel was created twice, no
message was posted twice. Prints the figures and writes bench/results/drill-kill.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import drop, postgres_url  # noqa: E402
from bench.slack_bench import am_body, start_server  # noqa: E402
from tests.fakes.slack_api import running_fake_slack_in_thread  # noqa: E402

RESULTS = ROOT / "bench" / "results"


async def send(
    base: dict[str, str],
    bodies: list[bytes],
    accepted: set[int],
    third: asyncio.Event | None = None,
) -> None:
    """Send every body until it gets a 2xx, retrying through the outage, as senders do."""
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=16)) as client:
        pending = list(range(len(bodies)))
        gate = asyncio.Semaphore(16)

        async def one(n: int) -> None:
            for _ in range(600):
                async with gate:
                    try:
                        answer: httpx.Response | None = await client.post(
                            f"{base['url']}/webhooks/alertmanager",
                            content=bodies[n],
                            headers={"content-type": "application/json"},
                        )
                    except httpx.TransportError:
                        answer = None  # the server is down (killed): retry, as a sender would
                    if answer is not None and answer.status_code < 300:
                        accepted.add(n)
                        if third is not None and len(accepted) >= len(bodies) // 3:
                            third.set()
                        return
                await asyncio.sleep(0.5)

        await asyncio.gather(*(one(n) for n in pending))


def kill_drill(alerts: int, groups: int) -> dict[str, Any]:
    pg = postgres_url()
    if pg is None:
        raise SystemExit("the kill drill needs Postgres at 127.0.0.1:5432")
    name, db_url = pg
    problems: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_fake_slack_in_thread(rate_limit_scale=10.0) as fake,
        ):
            broadcast = fake.channel_by_name("incidents").id
            process, url = start_server(db_url, fake.base_url, broadcast, Path(tmp))
            base = {"url": url}
            bodies = [am_body(n % groups, n) for n in range(alerts)]
            accepted: set[int] = set()

            async def storm_with_kill() -> None:
                third = asyncio.Event()
                sender = asyncio.create_task(send(base, bodies, accepted, third))
                await third.wait()
                os.kill(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
                killed_at = len(accepted)
                await asyncio.sleep(1)
                restarted, new_url = await asyncio.to_thread(
                    start_server, db_url, fake.base_url, broadcast, Path(tmp)
                )
                base["url"] = new_url
                base["killed_at"] = str(killed_at)
                base["pid"] = str(restarted.pid)
                await sender

            started = time.monotonic()
            asyncio.run(storm_with_kill())
            deadline = time.monotonic() + 600
            engine = sa.create_engine(db_url)
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    left = conn.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                    ).scalar_one()
                if left == 0:
                    break
                time.sleep(1)
            elapsed = time.monotonic() - started
            os.kill(int(base["pid"]), signal.SIGTERM)
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM alert")).scalar_one()
                distinct = conn.execute(
                    sa.text("SELECT count(DISTINCT fingerprint) FROM alert")
                ).scalar_one()
                incidents = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
                outbox = dict(
                    conn.execute(
                        sa.text("SELECT status, count(*) FROM outbox GROUP BY status")
                    ).all()
                )
            engine.dispose()
            channels = Counter(
                c.name for c in fake.workspace.channels.values() if c.name.startswith("inc-")
            )
            duplicates = 0
            for channel in fake.workspace.channels.values():
                texts = Counter(m.text for m in fake.messages(channel.id) if m.text)
                duplicates += sum(
                    n - 1 for t, n in texts.items() if n > 1 and not t.startswith(("✅",))
                )
            if len(accepted) != alerts:
                problems.append(f"only {len(accepted)} of {alerts} alerts were accepted")
            if stored != len(accepted) or distinct != stored:
                problems.append(
                    f"{stored} alert rows ({distinct} distinct) for {len(accepted)} accepted"
                )
            if incidents != groups:
                problems.append(f"{incidents} incidents for {groups} groups")
            if outbox.get("pending") or outbox.get("failed"):
                problems.append(f"outbox not delivered: {outbox}")
            if any(n > 1 for n in channels.values()) or len(channels) != groups:
                problems.append(f"channels: {len(channels)} for {groups} groups")
            if duplicates:
                problems.append(f"{duplicates} message(s) posted twice")
            return {
                "alerts": alerts,
                "groups": groups,
                "accepted": len(accepted),
                "accepted_before_kill": int(base["killed_at"]),
                "alerts_stored": stored,
                "incidents": incidents,
                "outbox": outbox,
                "channels": len(channels),
                "duplicate_messages": duplicates,
                "seconds": round(elapsed, 1),
                "problems": problems,
            }
    finally:
        drop(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("drill", choices=["kill"])
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--groups", type=int, default=30)
    args = parser.parse_args()
    result = kill_drill(args.alerts, args.groups)
    for key, value in result.items():
        print(f"{key:<24}{value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"drill-{args.drill}.json").write_text(json.dumps(result, indent=2))
    if result["problems"]:
        print("DRILL FAILED", file=sys.stderr)
        raise SystemExit(1)
    print("drill passed: nothing lost, nothing duplicated")


if __name__ == "__main__":
    main()
