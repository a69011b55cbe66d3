"""Ingest benchmark: Alertmanager bodies at concurrency 32 against a real `warroom serve`.

For SQLite and for Postgres (when reachable), for bodies of 1 alert and of 50 alerts, and, in
the same run, against a bare endpoint on the same server stack (parse the JSON, answer 200,
store nothing) as the ceiling. Each case runs REPEATS times; the table shows medians.

    python -m bench.ingest [--requests 1500] [--repeats 3]

Prints a table and writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("WARROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CONCURRENCY = 32


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


def load(url: str, per_body: int, requests: int, seed: str) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench._load",
            url,
            str(per_body),
            str(requests),
            str(CONCURRENCY),
            seed,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def postgres_url() -> tuple[str, str] | None:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            name = f"warroom_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1500, help="bodies of 1 alert per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        targets: list[tuple[str, str | None, str | None]] = [
            ("bare", None, None),
            ("sqlite", f"sqlite:///{workdir}/b.db", None),
        ]
        pg = postgres_url()
        if pg:
            targets.append(("postgres", pg[1], pg[0]))
        else:
            print("Postgres not reachable: skipping it", file=sys.stderr)
        try:
            for name, url, _ in targets:
                process, endpoint = start(name, url, workdir)
                try:
                    for per_body, requests in (
                        (1, args.requests),
                        (50, max(50, args.requests // 10)),
                    ):
                        runs = [
                            load(endpoint, per_body, requests, f"{name}{per_body}r{n}")
                            for n in range(args.repeats)
                        ]
                        cases.append(
                            {
                                "target": name,
                                "alerts_per_body": per_body,
                                "runs": runs,
                                "rps": median(r["rps"] for r in runs),
                                "alerts_per_s": median(r["alerts_per_s"] for r in runs),
                                "p50_ms": median(r["p50_ms"] for r in runs),
                                "p99_ms": median(r["p99_ms"] for r in runs),
                                "non_2xx": sum(
                                    c
                                    for r in runs
                                    for code, c in r["codes"].items()
                                    if not str(code).startswith("2")
                                ),
                            }
                        )
                finally:
                    process.terminate()
                    process.wait(timeout=15)
        finally:
            if pg:
                drop(pg[0])
    ceiling = {c["alerts_per_body"]: c["rps"] for c in cases if c["target"] == "bare"}
    for case in cases:
        case["ratio_to_bare"] = round(case["rps"] / ceiling[case["alerts_per_body"]], 3)
    print(
        f"ingest at concurrency {CONCURRENCY}, {os.cpu_count()} cores, medians of "
        f"{args.repeats} runs"
    )
    print(
        f"{'target':<10}{'alerts/body':>12}{'req/s':>10}{'alerts/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'vs bare':>9}{'non-2xx':>9}"
    )
    for c in cases:
        print(
            f"{c['target']:<10}{c['alerts_per_body']:>12}{c['rps']:>10.1f}{c['alerts_per_s']:>10.1f}"
            f"{c['p50_ms']:>9.1f}{c['p99_ms']:>9.1f}{c['ratio_to_bare']:>9.2f}{c['non_2xx']:>9}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "concurrency": CONCURRENCY,
        "cases": cases,
    }
    (RESULTS / "ingest.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
