"""Post-mortem benchmark: build and render the draft of an incident with a long timeline.

Creates one incident with ``--events`` timeline events (10,000 by default: flapping
alerts, notes, step runs with rows, status and severity changes, updates), 50 alerts,
follow-ups and outbox messages, in a temporary SQLite database and, when a server answers
at ``--postgres``, in a temporary Postgres database (dropped afterwards). Then it builds
and renders the post-mortem ``--runs`` times, prints a table (median and p95, in ms) and
writes ``bench/results/postmortem.json``.

    .venv/bin/python bench/postmortem_bench.py [--runs 30] [--events 10000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bot.clock import FixedClock
from bot.delivery.notify import Notifier
from bot.delivery.updates import Updates
from bot.incidents.lifecycle import Change, Incidents
from bot.incidents.severity import P1_P4
from bot.postmortem import build_postmortem, render_markdown
from bot.store.db import Database
from bot.store.migrate import upgrade
from bot.store.models import Alert
from bot.templating import Templates

RESULTS = Path(__file__).resolve().parent / "results" / "postmortem.json"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
BATCH = 25  # events per transaction while filling


def _change(n: int) -> tuple[str, Change]:
    """The n-th filler event and its actor: mostly alert flaps and notes, some step runs."""
    turn = n % 20
    if turn < 11:
        status = "firing" if n % 2 else "resolved"
        data = {"fingerprint": f"fp-{n % 50}", "status": status, "links": {}}
        return "alertmanager", Change("alert", f"alert {status}: DiskFilling host-{n % 50}", data)
    if turn < 17:
        return f"U{n % 7}", Change("note", f"checked host-{n % 50}: iowait {n % 97}%")
    grade = ("green", "yellow", "red")[n % 3]
    data = {
        "run_id": f"run-{n}",
        "runbook": "disk",
        "step": "usage",
        "kind": "diagnostic",
        "target": f"host-{n % 50}",
        "params": {"mount": "/var"},
        "grade": grade,
        "summary": f"/var at {80 + n % 20}% on host-{n % 50}",
        "rows": [{"mount": "/var", "used_pct": 80 + n % 20, "free_gb": n % 13}] * 3,
        "duration_ms": 40 + n % 60,
        "requested_by": f"U{n % 7}",
        "approved_by": [],
        "confirmed_by": None,
    }
    return f"U{n % 7}", Change("step_run", f"ran disk/usage: {grade}", data)


async def fill(url: str, events: int) -> None:
    """One incident with ``events`` timeline events (and its alerts, follow-ups, messages)."""
    clock = FixedClock(T0)
    db = Database(url)
    templates = Templates()
    incidents = Incidents(db, clock=clock, scheme=P1_P4)
    incidents.listeners.append(Notifier(templates=templates, scheme=P1_P4))
    updates = Updates(incidents, templates, clock)
    try:
        await incidents.declare(title="Disks filling on the log hosts", actor="U1", severity="P2")
        async with db.transaction() as session:
            for n in range(50):
                session.add(
                    Alert(
                        incident_id=1,
                        source="alertmanager",
                        fingerprint=f"fp-{n}",
                        status="firing",
                        labels={"alertname": "DiskFilling", "host": f"host-{n}"},
                        summary=f"Disk filling on host-{n}",
                        links={"graph": f"http://prometheus.local/graph?host={n}"},
                        starts_at=T0 - timedelta(minutes=5),
                        first_seen=T0,
                        last_seen=T0 + timedelta(hours=5),
                        count=1 + n,
                    )
                )
        written = 1  # the declaration
        target = events - 11  # the 10 follow-ups and the resolution come last
        n = 0
        while written < target:
            clock.advance(timedelta(seconds=30))
            if n % 40 == 39:
                await updates.post("INC-1", actor="U2", progress=f"cleaned {n} hosts")
                written += 1
            batch = [_change(n + i) for i in range(min(BATCH, target - written))]
            for actor in dict.fromkeys(a for a, _ in batch):
                async with db.transaction() as session:
                    incident = await incidents.lock_key(session, "INC-1")
                    await incidents.record(
                        session, incident, actor, [c for a, c in batch if a == actor]
                    )
            written += len(batch)
            n += len(batch)
        for k in range(10):
            await incidents.add_follow_up("INC-1", f"Rotate logs on host-{k}", actor="U1")
        await incidents.resolve("INC-1", actor="U1", root_cause="log rotation stopped")
    finally:
        await db.dispose()


async def measure(url: str, runs: int) -> dict[str, Any]:
    gc.collect()  # the fill's garbage is not the draft's cost
    db = Database(url)
    incidents = Incidents(db, clock=FixedClock(T0), scheme=P1_P4)
    templates = Templates(timezone="Europe/Paris")
    builds: list[float] = []
    renders: list[float] = []
    try:
        for _ in range(runs + 1):  # the first run warms the pool and the template cache
            start = time.perf_counter()
            pm = await build_postmortem(
                db, "INC-0001", scheme=P1_P4, incidents=incidents, now=T0 + timedelta(days=1)
            )
            built = time.perf_counter()
            text = render_markdown(templates, pm)
            builds.append((built - start) * 1000)
            renders.append((time.perf_counter() - built) * 1000)
    finally:
        await db.dispose()
    builds, renders = builds[1:], renders[1:]
    return {
        "runs": runs,
        "timeline_events": int(next(m.value for m in pm.metrics if m.name == "Timeline events")),
        "timeline_rows_rendered": len(pm.timeline),
        "markdown_bytes": len(text.encode()),
        "build_ms": _stats(builds),
        "render_ms": _stats(renders),
        "total_ms": _stats([b + r for b, r in zip(builds, renders, strict=True)]),
    }


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "min": round(ordered[0], 2),
    }


async def sqlite_run(events: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        await fill(url, events)
        return await measure(url, runs)


async def postgres_run(admin: str, events: int, runs: int) -> dict[str, Any] | None:
    try:
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            name = f"warroom_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as error:
        print(f"postgres skipped: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return None
    url = f"{admin.rsplit('/', 1)[0]}/{name}".replace("postgresql://", "postgresql+psycopg://")
    try:
        upgrade(url)
        await fill(url, events)
        return await measure(url, runs)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--postgres", default=PG_ADMIN, help="admin URL of a Postgres server")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    results["sqlite"] = asyncio.run(sqlite_run(args.events, args.runs))
    if not args.no_postgres:
        pg = asyncio.run(postgres_run(args.postgres, args.events, args.runs))
        if pg is not None:
            results["postgres"] = pg

    columns = [
        (f"{part} {stat}", part, stat)
        for part in ("build", "render", "total")
        for stat in ("median", "p95")
    ]
    print(
        f"{'database':<10} {'events':>7} {'runs':>5}" + "".join(f" {c:>13}" for c, _, _ in columns)
    )
    for backend, r in results.items():
        cells = "".join(f" {r[f'{part}_ms'][stat]:>13.1f}" for _, part, stat in columns)
        print(f"{backend:<10} {r['timeline_events']:>7} {r['runs']:>5}{cells}")
    print("(milliseconds)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "postmortem",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "events": args.events,
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
