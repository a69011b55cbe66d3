"""Slack-side benchmarks against the fake Slack Web API with Slack's real rate limits.

    python -m bench.slack_bench storm [--alerts 10000 --groups 50]
    python -m bench.slack_bench acks [--commands 500 --concurrency 20]

storm: alerts in groups as fast as the generator can send them to a real `warroom serve`;
reports incidents opened, Slack calls per method, 429s served, seconds until every channel
has its pinned card, alerts stored exactly once, and the server's peak RSS; timings are medians
of --repeats rounds (each on a fresh server and fake), the counts those of the last round with
every round's beside them.
acks: signed `/incident` commands at a fixed concurrency; p50/p99 time to Slack's ack, medians of
--repeats rounds.
storm-acks: both at once. wrk (bench/ingest.lua, 50-alert bodies into 50 open groups) storms
the server for --seconds while one sender sends signed `/incident` commands back to back; p50
and p99 time to Slack's ack during the storm, the storm's own rate, the alerts stored (each
accepted one exactly once) and the server's RSS once the storm is over.
Each prints a table and writes bench/results/<mode>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port  # noqa: E402
from tests.fakes.slack_api import running_fake_slack_in_thread  # noqa: E402
from tests.fakes.slack_state import ALICE, BOT_TOKEN  # noqa: E402

SECRET = "bench-signing-secret"
ROUND_FIGURES = (
    "incidents",
    "cards_pinned",
    "alerts_stored",
    "slack_429s",
    "seconds_until_every_card",
)
RESULTS = ROOT / "bench" / "results"


def start_server(
    db_url: str,
    api_url: str,
    broadcast: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> tuple[Any, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(
        DATABASE_URL=db_url,
        WARROOM_SERVER__PORT=str(port),
        WARROOM_LOG_LEVEL="WARNING",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        WARROOM_SLACK__API_URL=api_url,
        WARROOM_SLACK__BROADCAST_CHANNEL=broadcast,
    )
    env.update(extra_env or {})
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("warroom")), "serve"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def am_body(group: int, n: int, *, status: str = "firing") -> bytes:
    ends = "2026-11-26T09:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="Storm{group}"}}',
            "status": status,
            "receiver": "warroom",
            "groupLabels": {"alertname": f"Storm{group}"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": status,
                    "labels": {"alertname": f"Storm{group}", "instance": f"host-{n}"},
                    "annotations": {"summary": f"storm group {group}"},
                    "startsAt": "2026-11-26T09:00:00Z",
                    "endsAt": ends,
                    "generatorURL": "http://prometheus/graph",
                    "fingerprint": f"{group:04d}{n:012d}",
                }
            ],
        }
    ).encode()


async def send_all(url: str, bodies: list[bytes], concurrency: int) -> list[int]:
    limits = httpx.Limits(max_connections=concurrency)
    codes: list[int] = []
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        queue = iter(bodies)

        async def worker() -> None:
            for body in queue:
                answer = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                codes.append(answer.status_code)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return codes


def storm(alerts: int, groups: int) -> dict[str, Any]:
    from bench.ingest import Store

    with tempfile.TemporaryDirectory() as tmp, running_fake_slack_in_thread() as fake:
        db_url = f"sqlite:///{tmp}/storm.db"
        broadcast = fake.channel_by_name("incidents").id
        process, base = start_server(db_url, fake.base_url, broadcast, Path(tmp))
        try:
            bodies = [am_body(n % groups, n) for n in range(alerts)]
            started = time.monotonic()
            codes = asyncio.run(send_all(f"{base}/webhooks/alertmanager", bodies, 32))
            sent = time.monotonic() - started
            deadline = started + 900
            while time.monotonic() < deadline:
                channels = [
                    c for c in fake.workspace.channels.values() if c.name.startswith("inc-")
                ]
                if len(channels) >= groups and all(fake.pins(c.id) for c in channels):
                    break
                time.sleep(0.5)
            cards_after = time.monotonic() - started
            journal = Store(db_url)  # every alert folded before counting
            folded_after = journal.drain(timeout=900) + cards_after
            journal.engine.dispose()
            journal.journal.dispose()
            rss = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            incidents = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
            stored = conn.execute(sa.text("SELECT count(*) FROM alert")).scalar_one()
            distinct = conn.execute(
                sa.text("SELECT count(DISTINCT fingerprint) FROM alert")
            ).scalar_one()
            failed = conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE status = 'failed'")
            ).scalar_one()
        engine.dispose()
        channels = [c for c in fake.workspace.channels.values() if c.name.startswith("inc-")]
        return {
            "alerts": alerts,
            "groups": groups,
            "accepted_2xx": sum(1 for c in codes if c < 300),
            "send_seconds": round(sent, 1),
            "alerts_per_s": round(alerts / sent, 1),
            "incidents": incidents,
            "channels": len(channels),
            "cards_pinned": sum(1 for c in channels if fake.pins(c.id)),
            "seconds_until_every_card": round(cards_after, 1),
            "seconds_until_every_alert_folded": round(folded_after, 1),
            "alerts_stored": stored,
            "distinct_alerts": distinct,
            "outbox_failed": failed,
            "slack_calls": dict(sorted(fake.calls_by_method.items())),
            "slack_429s": fake.ratelimited_count,
            "server_peak_rss_mb": round(rss, 1),
        }


def sign(timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()


async def command_acks(base: str, fake: Any, channel: str, total: int, conc: int) -> list[float]:
    texts = ["list", "timeline INC-1", "note INC-1 bench note", "help"]
    timings: list[float] = []
    # One client (one keep-alive connection) per sender, made before the clock starts. Senders
    # sharing one pool of `conc` connections measure httpcore instead: a request handed a
    # connection that another has just taken retries, sometimes for hundreds of ms, before
    # it writes a byte (the retry loop described in encode/httpcore#822).
    one = httpx.Limits(max_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(timeout=30, limits=one))
            for _ in range(conc)
        ]
        queue = iter(range(total))

        async def worker(client: httpx.AsyncClient) -> None:
            for n in queue:
                form = {
                    "command": "/incident",
                    "text": texts[n % len(texts)],
                    "user_id": ALICE.id,
                    "channel_id": channel,
                    "team_id": "T0FAKE0001",
                    "response_url": fake.response_url(f"b{n}"),
                    "trigger_id": "x",
                }
                body = urlencode(form).encode()
                stamp = str(int(time.time()))
                started = time.perf_counter()
                answer = await client.post(
                    f"{base}/slack/events",
                    content=body,
                    headers={
                        "content-type": "application/x-www-form-urlencoded",
                        "x-slack-request-timestamp": stamp,
                        "x-slack-signature": sign(stamp, body),
                    },
                )
                timings.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(worker(client) for client in clients))
    return timings


def acks(total: int, concurrency: int, repeats: int) -> dict[str, Any]:
    """``repeats`` rounds of ``total`` commands against one server; medians over the rounds."""
    rounds: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_fake_slack_in_thread(rate_limit_scale=1000.0) as fake,
    ):
        db_url = f"sqlite:///{tmp}/acks.db"
        broadcast = fake.channel_by_name("incidents").id
        process, base = start_server(db_url, fake.base_url, broadcast, Path(tmp))
        try:
            general = fake.channel_by_name("general").id
            asyncio.run(command_acks(base, fake, general, 1, 1))  # warm-up (and INC-1 below)
            body = am_body(0, 0)
            httpx.post(
                f"{base}/webhooks/alertmanager",
                content=body,
                headers={"content-type": "application/json"},
            )
            for _ in range(repeats):
                timings = asyncio.run(command_acks(base, fake, general, total, concurrency))
                cuts = quantiles(timings, n=100, method="inclusive")
                rounds.append(
                    {
                        "p50_ms": round(median(timings), 1),
                        "p99_ms": round(cuts[98], 1),
                        "max_ms": round(max(timings), 1),
                    }
                )
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "commands": total,
        "concurrency": concurrency,
        "repeats": repeats,
        **{k: median(r[k] for r in rounds) for k in ("p50_ms", "p99_ms", "max_ms")},
        "rounds": rounds,
    }


def storm_acks(seconds: int, database: str) -> dict[str, Any]:
    """Slash-command acks measured while wrk storms the same server."""
    from bench.ingest import PG_ADMIN, Store, check, drop, postgres_url, rss_mb, wrk

    pg = postgres_url() if database == "postgres" else None
    if database == "postgres" and pg is None:
        raise SystemExit(f"PostgreSQL is not reachable at {PG_ADMIN}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_fake_slack_in_thread(rate_limit_scale=1000.0) as fake,
    ):
        db_url = pg[1] if pg else f"sqlite:///{tmp}/storm-acks.db"
        broadcast = fake.channel_by_name("incidents").id
        process, base = start_server(db_url, fake.base_url, broadcast, Path(tmp))
        store = Store(db_url)
        try:
            general = fake.channel_by_name("general").id
            asyncio.run(command_acks(base, fake, general, 5, 1))  # warm-up
            seed = f"sa{int(time.time())}"
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                load = pool.submit(
                    wrk, f"{base}/webhooks/alertmanager", "open", 50, seed, seconds, 32
                )
                time.sleep(1)  # the storm is under way
                timings: list[float] = []
                while not load.done():
                    timings += asyncio.run(command_acks(base, fake, general, 10, 1))
                storm_run = load.result()
            # Answered 2xx = journaled: the fold catches up behind the storm.
            storm_run["drain_s"] = store.drain(timeout=1800)
            verdict = check("open", 50, storm_run, store.counts(seed))
            rss = rss_mb(process.pid)
            peak = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
                stopped = "SIGTERM"
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                stopped = "SIGKILL after 30 s: SIGTERM did not stop it"
            store.engine.dispose()
            store.journal.dispose()
            if pg:
                drop(pg[0])
    cuts = quantiles(timings, n=100, method="inclusive")
    return {
        "storm": f"wrk -t1 -c32 -d{seconds}s, 50-alert bodies into 50 open groups ({database})",
        "redis": "REDIS_URL" in os.environ,
        "storm_req_per_s": storm_run["rps"],
        "storm_alerts_per_s": storm_run["alerts_per_s"],
        "storm_p99_ms": storm_run["p99_ms"],
        "alerts_stored": storm_run["stored_alerts"],
        "fold_caught_up_s_after_storm": storm_run["drain_s"],
        "stored_check": verdict,
        "acks_during_storm": len(timings),
        "ack_p50_ms": round(median(timings), 1),
        "ack_p99_ms": round(cuts[98], 1),
        "ack_max_ms": round(max(timings), 1),
        "server_rss_mb_after": rss,
        "server_peak_rss_mb": round(peak, 1),
        "server_stopped_by": stopped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["storm", "acks", "storm-acks"])
    parser.add_argument("--seconds", type=int, default=45, help="storm-acks: storm length")
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="rounds (medians shown)")
    parser.add_argument(
        "--database", choices=["sqlite", "postgres"], default="sqlite", help="storm-acks"
    )
    args = parser.parse_args()
    if args.mode == "storm":
        rounds = [storm(args.alerts, args.groups) for _ in range(args.repeats)]
        result = {
            **rounds[-1],
            **{
                key: median(r[key] for r in rounds)
                for key in ("send_seconds", "alerts_per_s", "seconds_until_every_card")
            },
            "server_peak_rss_mb": max(r["server_peak_rss_mb"] for r in rounds),
            "every_round": {key: [r[key] for r in rounds] for key in ROUND_FIGURES},
        }
    elif args.mode == "storm-acks":
        result = storm_acks(args.seconds, args.database)
    else:
        result = acks(args.commands, args.concurrency, args.repeats)
    result["machine"] = {"cores": os.cpu_count(), "python": platform.python_version()}
    for key, value in result.items():
        print(f"{key:<28}{value}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    postgres = args.mode == "storm-acks" and args.database == "postgres"
    name = f"{args.mode}-postgres" if postgres else args.mode
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
