"""Ingest benchmark: Alertmanager bodies at concurrency 32 against a real `warroom serve`,
driven by wrk (Debian's C load generator, one thread) so the client never measures itself.

Cases: (a) the same alert repeated (the dedup path), (b) a new alert per request into 50 open
groups, (c) 50-alert bodies into 50 open groups, (d) a storm of new groups (one new incident
per request). Targets: warroom on SQLite, warroom on Postgres, and the bare endpoint
(bench/_bare.py: the same uvicorn + Starlette stack parsing the body and storing nothing) as
the ceiling. Each warroom run gets a fresh server on a fresh database (no earlier storm's work
left running), then waits for the fold. Every repeat runs every case on every target,
interleaved, so ratios come from one
run; the table shows medians. After each run the database is counted: every alert answered 2xx
must be stored exactly once (for (a): at most one row), or the run is marked LOST. The
server's RSS is read when its fold is done and again ``SETTLE_S`` later (intake quiet: the
server has handed its freed heap back); the table's figure is the later one.

    python -m bench.ingest [--seconds 5] [--repeats 3] [--connections 32] [--cases abcd]

Prints a table and writes bench/results/ingest.json. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa

from bot.intake.journal import journal_left, sidecar_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("WARROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 32
#: RSS is read when the fold is done and again this long after (quiet: the heap trimmed).
SETTLE_S = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", headers={"content-type": "application/json"}, timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start(
    kind: str, database_url: str | None, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    if kind == "bare":
        command = [sys.executable, "-m", "bench._bare", str(port)]
    else:
        env.update(
            DATABASE_URL=database_url or "",
            WARROOM_SERVER__PORT=str(port),
            WARROOM_LOG_LEVEL="WARNING",
        )
        command = [str(Path(sys.executable).with_name("warroom")), "serve"]
    process = subprocess.Popen(
        command,
        cwd=workdir if kind != "bare" else ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/webhooks/alertmanager"
    wait_ready(url, process)
    return process, url


def measured(
    name: str, workdir: Path, case: str, per_body: int, seed: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One wrk run against a fresh server on a fresh database (nothing left over from the
    run before, such as a storm's channels still being opened), then the fold awaited and
    every stored alert counted."""
    pg = postgres_url() if name == "postgres" else None
    db_url = pg[1] if pg else f"sqlite:///{workdir}/{seed}.db"
    process, endpoint = start(name, db_url, workdir)
    store = Store(db_url)
    try:
        run = wrk(endpoint, case, per_body, seed, args.seconds, args.connections)
        # Answered 2xx = journaled; the fold may still be catching up.
        run["drain_s"] = drain = store.drain()
        run["check"] = check(case, per_body, run, store.counts(seed))
        run["folded_alerts_per_s"] = round(run["stored_alerts"] / (run["duration_s"] + drain), 1)
        run["rss_mb_folded"] = rss_mb(process.pid)
        time.sleep(SETTLE_S)  # the server trims its heap once intake has been quiet a while
        run["rss_mb"] = rss_mb(process.pid)
        return run
    finally:
        process.terminate()
        process.wait(timeout=30)
        store.engine.dispose()
        store.journal.dispose()
        if pg:
            drop(pg[0])


def postgres_url(*, probe: bool = False) -> tuple[str, str] | None:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            name = f"warroom_bench_{uuid.uuid4().hex[:8]}"
            if probe:
                return name, ""
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


LUA = ROOT / "bench" / "ingest.lua"
CASES: dict[str, tuple[str, int]] = {
    "a repeated alert": ("repeat", 1),
    "b new alert, 50 open groups": ("open", 1),
    "c 50-alert bodies": ("open", 50),
    "d storm of new groups": ("storm", 1),
}


def wrk(
    url: str, case: str, per_body: int, seed: str, seconds: int, connections: int
) -> dict[str, Any]:
    """One wrk run; its Lua ``done`` prints one JSON line."""
    env = {
        **os.environ,
        "WARROOM_CASE": case,
        "WARROOM_PER_BODY": str(per_body),
        "WARROOM_SEED": seed,
    }
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    ok = sum(c for code, c in raw["codes"].items() if code.startswith("2"))
    seconds_run = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "ok": ok,
        "codes": raw["codes"],
        "errors": raw["errors"],
        "duration_s": round(seconds_run, 2),
        "rps": round(raw["requests"] / seconds_run, 1),
        "alerts_per_s": round(ok * per_body / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
    }


class Store:
    """Counts what a warroom target stored, to check nothing was lost or doubled."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        side = sidecar_path(url)  # SQLite keeps its journal in a file of its own
        self.journal = sa.create_engine(f"sqlite:///{side}") if side else self.engine

    def drain(self, timeout: float = 1800.0) -> float:
        """Wait until the intake journal is folded; the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with self.journal.connect() as conn:
                left = journal_left(conn)
            if not left:
                return round(time.monotonic() - start, 2)
            time.sleep(0.05)
        raise RuntimeError(f"the intake journal was not folded within {timeout:.0f} s")

    def counts(self, seed: str) -> tuple[int, int, int]:
        """Alerts of this run, distinct fingerprints among them, incidents of this run."""
        with self.engine.connect() as conn:
            alerts, distinct = conn.execute(
                sa.text(
                    "SELECT count(*), count(DISTINCT fingerprint) FROM alert "
                    "WHERE fingerprint LIKE :p"
                ),
                {"p": f"{seed}-%"},
            ).one()
            incidents = conn.execute(
                sa.text("SELECT count(DISTINCT incident_id) FROM alert WHERE fingerprint LIKE :p"),
                {"p": f"{seed}-%"},
            ).scalar_one()
        return int(alerts), int(distinct), int(incidents)


def check(case: str, per_body: int, run: dict[str, Any], counts: tuple[int, int, int]) -> str:
    alerts, distinct, incidents = counts
    run.update(stored_alerts=alerts, distinct_fingerprints=distinct, incidents=incidents)
    if alerts != distinct:
        return "DOUBLED"
    if case == "repeat":
        return "ok" if alerts == (1 if run["ok"] else 0) else "LOST"
    expected = run["ok"] * per_body
    if alerts < expected:
        return "LOST"
    if case == "storm" and incidents < run["ok"]:
        return "LOST"
    return "ok"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=CONCURRENCY)
    parser.add_argument(
        "--cases", default="abcd", help="which cases, by letter (default abcd: all of them)"
    )
    args = parser.parse_args()
    chosen = {k: v for k, v in CASES.items() if k[0] in args.cases}
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        targets = ["bare", "sqlite"]
        if postgres_url(probe=True):
            targets.append("postgres")
        else:
            print("Postgres not reachable: measuring SQLite only", file=sys.stderr)
        bare, bare_url = start("bare", None, workdir)
        rss: dict[str, float] = {}
        try:
            for repeat in range(args.repeats):
                for label, (case, per_body) in chosen.items():
                    for name in targets:
                        seed = f"{name[0]}{repeat}{case}{per_body}x{uuid.uuid4().hex[:6]}"
                        if name == "bare":
                            run = wrk(
                                bare_url, case, per_body, seed, args.seconds, args.connections
                            )
                            run.update(target=name, case=label, repeat=repeat, check="-")
                        else:
                            run = measured(name, workdir, case, per_body, seed, args)
                            run.update(target=name, case=label, repeat=repeat)
                            rss[name] = max(rss.get(name, 0.0), run["rss_mb"])
                        runs.append(run)
                        print(
                            f"  {label:<28} {name:<9} {run['rps']:>8.0f} req/s "
                            f"p99 {run['p99_ms']:>7.1f} ms  drain {run.get('drain_s', 0):5.1f} s"
                            f"  {run['check']}"
                            + (f"  RSS {run['rss_mb']} MB" if "rss_mb" in run else ""),
                            file=sys.stderr,
                        )
            rss["bare"] = rss_mb(bare.pid)
        finally:
            bare.terminate()
            bare.wait(timeout=15)
    cases = summarise(runs, args.repeats)
    print(
        f"ingest with wrk -t1 -c{args.connections} -d{args.seconds}s, {os.cpu_count()} cores, "
        f"medians of {args.repeats} interleaved runs"
    )
    print(
        f"{'case':<29}{'target':<10}{'req/s':>9}{'alerts/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs bare':>9}{'non-2xx':>9}  stored"
    )
    for c in cases:
        print(
            f"{c['case']:<29}{c['target']:<10}{c['rps']:>9.0f}{c['alerts_per_s']:>10.0f}"
            f"{c['p50_ms']:>9.1f}{c['p99_ms']:>9.1f}{c['ratio_to_bare']:>9.2f}{c['non_2xx']:>9}"
            f"  {c['check']}"
        )
    print("RSS after the run (MB): " + ", ".join(f"{k} {v}" for k, v in rss.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "generator": f"wrk -t1 -c{args.connections} -d{args.seconds}s -s bench/ingest.lua",
        "cases": cases,
        "rss_mb": rss,
        "runs": runs,
    }
    name = "ingest.json" if len(chosen) == len(CASES) else f"ingest-{args.cases}.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    if any(c["check"] not in ("ok", "-") for c in cases):
        sys.exit("an accepted alert was lost or stored twice")


def summarise(runs: list[dict[str, Any]], repeats: int) -> list[dict[str, Any]]:
    cases = []
    for label in CASES:
        bare = [r for r in runs if r["case"] == label and r["target"] == "bare"]
        ceiling = median(r["rps"] for r in bare) if bare else float("nan")
        for target in dict.fromkeys(r["target"] for r in runs):
            mine = [r for r in runs if r["case"] == label and r["target"] == target]
            if not mine:
                continue
            rps = median(r["rps"] for r in mine)
            checks = {r["check"] for r in mine}
            cases.append(
                {
                    "case": label,
                    "target": target,
                    "rps": rps,
                    "alerts_per_s": median(r["alerts_per_s"] for r in mine),
                    "p50_ms": median(r["p50_ms"] for r in mine),
                    "p99_ms": median(r["p99_ms"] for r in mine),
                    "ratio_to_bare": round(rps / ceiling, 3),
                    "non_2xx": sum(r["requests"] - r["ok"] for r in mine),
                    "check": "-"
                    if checks == {"-"}
                    else ("ok" if checks == {"ok"} else "/".join(sorted(checks))),
                }
            )
    return cases


if __name__ == "__main__":
    main()
