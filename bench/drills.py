"""Fault drills: each runs a storm against real `warroom serve` processes (the fake Slack with
Slack's rate limits, sped up 10x) while something breaks, then audits what landed, and exits
non-zero on any loss or duplicate.

    python -m bench.drills kill       # SIGKILL the server a third into the storm, restart it
    python -m bench.drills slack      # Slack answers 429 or 500 to 30% of calls for a minute
    python -m bench.drills redis      # Redis stopped mid-run, started again later
    python -m bench.drills postgres   # Postgres stopped mid-run for 8 s, then started
    python -m bench.drills replicas   # two servers on one Postgres and one Redis
    python -m bench.drills escalation # escalation: two servers, PagerDuty failing 30%, a SIGKILL
    python -m bench.drills all

The senders retry what did not get a 2xx, as Alertmanager does. The audit: every alert that
got a 2xx stored exactly once, one incident and one channel per group, every outbox row
delivered (none pending or failed), no message posted twice (by the marker each post carries),
messages of each channel in their outbox order. Each drill prints its figures and writes
bench/results/drill-<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _escalation as esc  # noqa: E402
from bench._drill import (  # noqa: E402
    PrivateRedis,
    Sent,
    audit,
    private_postgres,
    private_redis,
    send,
    wait_delivered,
)
from bench.ingest import drop, postgres_url  # noqa: E402
from bench.slack_bench import SECRET, am_body, start_server  # noqa: E402
from tests.fakes.pagerduty import FakePagerDuty  # noqa: E402
from tests.fakes.slack_api import running_fake_slack_in_thread  # noqa: E402
from tests.fakes.slack_state import BOT_TOKEN  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SPEED = 10.0  # Slack's rate limits, ten times faster, so a drill takes minutes, not an hour
FAULT_SEED = [7]  # which calls the Slack drill fails (--seed)


@contextlib.contextmanager
def shared_postgres() -> Iterator[str]:
    pg = postgres_url()
    if pg is None:
        raise SystemExit("the drills need Postgres at 127.0.0.1:5432 (see the README)")
    try:
        yield pg[1]
    finally:
        drop(pg[0])


@dataclass
class Stage:
    """What a drill runs on: a database, the fake Slack, a working directory, maybe Redis."""

    db_url: str
    fake: Any
    workdir: Path
    redis: PrivateRedis | None = None

    def server(self, extra: dict[str, str] | None = None) -> tuple[Any, str]:
        """Start a `warroom serve` on this stage (``extra``: more environment variables);
        (process, base URL)."""
        broadcast = self.fake.channel_by_name("incidents").id
        env = {"REDIS_URL": self.redis.url} if self.redis else {}
        return start_server(
            self.db_url, self.fake.base_url, broadcast, self.workdir, {**env, **(extra or {})}
        )


@contextlib.contextmanager
def stage(*, db_url: str | None = None, redis: bool = False, seed: int = 0) -> Iterator[Stage]:
    """A stage on a throwaway database of the shared Postgres (unless ``db_url`` is given),
    with a private Redis if asked."""
    with contextlib.ExitStack() as stack:
        url = db_url or stack.enter_context(shared_postgres())
        cache = stack.enter_context(private_redis()) if redis else None
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        fake = stack.enter_context(running_fake_slack_in_thread(rate_limit_scale=SPEED, seed=seed))
        yield Stage(url, fake, workdir, cache)


def stop(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
        process.wait(timeout=30)


def storm(
    urls: list[str], bodies: list[bytes], *, pace: float = 0.0, at: dict[float, Any] | None = None
) -> Sent:
    """Send every body; ``at`` maps a fraction of bodies accepted to a coroutine function to
    run (once) when the storm gets there, e.g. the fault."""
    sent = Sent()
    steps = sorted((at or {}).items())

    async def run() -> None:
        fired: list[asyncio.Task[Any]] = []

        def progress(accepted: int) -> None:
            while steps and accepted >= steps[0][0] * len(bodies):
                _, action = steps.pop(0)
                fired.append(asyncio.create_task(action()))

        await send(urls, bodies, sent, progress=progress, pace=pace)
        await asyncio.gather(*fired)

    asyncio.run(run())
    return sent


def finish(
    on: Stage, sent: Sent, groups: int, figures: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    fake = on.fake
    if not wait_delivered(on.db_url):
        problems.append("the outbox was still busy after 10 minutes")
    landed, wrong = audit(on.db_url, fake, len(sent.accepted), groups)
    return {
        **figures,
        "accepted": len(sent.accepted),
        "answers": dict(sent.codes),
        "slowest_answer_s": round(sent.slowest_s, 2),
        **landed,
        "slack_calls": sum(fake.calls_by_method.values()),
        "slack_429s": fake.ratelimited_count,
        "problems": problems + wrong,
    }


# -- the drills ---------------------------------------------------------------------------


def kill_drill(alerts: int, groups: int) -> dict[str, Any]:
    """SIGKILL mid-storm, restart: what got a 2xx is stored, the outbox delivers once."""
    with stage() as on:
        process, url = on.server()
        urls = [url]
        figures: dict[str, Any] = {}
        servers = [process]

        async def kill() -> None:
            os.kill(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
            figures["killed_after_accepted"] = alerts // 3
            await asyncio.sleep(1)
            again, urls[0] = await asyncio.to_thread(on.server)
            servers.append(again)

        bodies = [am_body(n % groups, n) for n in range(alerts)]
        sent = storm(urls, bodies, at={1 / 3: kill})
        try:
            return finish(on, sent, groups, figures, [])
        finally:
            stop(servers[-1])


def slack_drill(alerts: int, groups: int) -> dict[str, Any]:
    """Slack answers 429 or 500 to 30% of calls for a minute; a quarter of those 500s come
    after the call took effect (the answer was lost, so a blind retry would post twice)."""
    with stage(seed=FAULT_SEED[0]) as on:
        fake = on.fake
        process, url = on.server()
        try:
            fake.failures.failure_rate = 0.3
            fake.failures.lost_answers = 0.25
            chaos_started = time.monotonic()
            firing = [am_body(n % groups, n) for n in range(alerts)]
            sent = storm([url], firing, pace=20.0 / alerts)  # spread over about 20 s
            resolved = [
                am_body(n % groups, n, status="resolved")
                for n in range(alerts)
                if n % groups % 2 == 0
            ]
            storm([url], resolved, pace=20.0 / max(1, len(resolved)))
            time.sleep(max(0.0, 60.0 - (time.monotonic() - chaos_started)))
            fake.failures.failure_rate = 0.0
            failed = [c for c in fake.calls if c.status in (429, 500) and not c.ok]
            figures = {
                "chaos_seconds": round(time.monotonic() - chaos_started, 1),
                "faults_injected": len(failed),
                "faults_429": sum(1 for c in failed if c.status == 429),
                "faults_500": sum(1 for c in failed if c.status == 500),
                "resolves_sent": len(resolved),
            }
            return finish(on, sent, groups, figures, [])
        finally:
            stop(process)


def redis_drill(alerts: int, groups: int) -> dict[str, Any]:
    """Redis stopped a third into the storm and started at two thirds; exact retries of
    earlier bodies are sent throughout (Redis is where their dedup marks live)."""
    with stage(redis=True) as on:
        redis = on.redis
        assert redis is not None
        process, url = on.server()
        figures: dict[str, Any] = {}
        try:
            originals = [am_body(n % groups, n) for n in range(alerts)]
            bodies: list[bytes] = []
            for n, body in enumerate(originals):  # every fifth body is followed by a retry
                bodies += [body, originals[n - 2]] if n % 5 == 4 else [body]

            async def redis_down() -> None:
                figures["redis_keys_before_stop"] = redis.keys("warroom:*")
                await asyncio.to_thread(redis.stop)
                figures["redis_stopped_at_s"] = round(time.monotonic() - began, 1)

            async def redis_up() -> None:
                await asyncio.to_thread(redis.start)
                figures["redis_started_at_s"] = round(time.monotonic() - began, 1)

            began = time.monotonic()
            index = {body: n for n, body in enumerate(originals)}
            sent = storm(
                [url], bodies, pace=30.0 / len(bodies), at={1 / 3: redis_down, 2 / 3: redis_up}
            )
            sent.accepted = {index[bodies[n]] for n in sent.accepted}
            time.sleep(6)  # the cache tries Redis again 5 s after it last failed
            late = storm([url], [am_body(0, alerts + n) for n in range(20)])
            sent.accepted |= {alerts + n for n in late.accepted}
            sent.codes.update(late.codes)
            ready = httpx.get(f"{url}/readyz", timeout=5).json()
            figures["redis_after"] = ready.get("redis")
            figures["redis_keys_after_restart"] = redis.keys("warroom:*")
            problems = []
            if figures["redis_keys_after_restart"] == 0:
                problems.append("Redis was not used again after it came back")
            if ready.get("redis") != "ok":
                problems.append(f"/readyz says redis is {ready.get('redis')!r}")
            non_2xx = {c: n for c, n in sent.codes.items() if not c.startswith("2")}
            if non_2xx:
                problems.append(f"answers other than 2xx while Redis was down: {non_2xx}")
            return finish(on, sent, groups, figures, problems)
        finally:
            stop(process)


def postgres_drill(alerts: int, groups: int) -> dict[str, Any]:
    """Postgres stopped (fast shutdown) a third into the storm, started 8 s later: webhooks
    get 503 meanwhile (not 500, none slower than 10 s), then 2xx again; nothing is lost."""
    with private_postgres() as pg, stage(db_url=pg.url) as on:
        process, url = on.server()
        marks: dict[str, float] = {}
        try:

            async def outage() -> None:
                marks["down"] = time.monotonic() - began
                await asyncio.to_thread(pg.stop)
                await asyncio.sleep(8)
                await asyncio.to_thread(pg.start)
                marks["up"] = time.monotonic() - began

            began = time.monotonic()
            bodies = [am_body(n % groups, n) for n in range(alerts)]
            sent = storm([url], bodies, pace=30.0 / alerts, at={1 / 3: outage})
            down, up = marks["down"], marks["up"]
            during = [a for a in sent.attempts if down <= a[0] <= up]
            after = [a for a in sent.attempts if a[0] > up and a[1].startswith("2")]
            recovered = round(after[0][0] - up, 2) if after else None
            figures = {
                "outage_s": round(up - down, 1),
                "answers_during_outage": dict(Counter(c for _, c, _ in during)),
                "slowest_during_outage_s": max((t for *_, t in during), default=0.0),
                "first_2xx_after_restart_s": recovered,
            }
            problems = []
            bad = {c: n for c, n in sent.codes.items() if not c.startswith(("2", "503"))}
            if bad:
                problems.append(f"answers other than 2xx or 503: {bad}")
            if sent.slowest_s > 10:
                problems.append(f"an answer took {sent.slowest_s:.1f} s (over 10 s)")
            if not any(c == "503" for _, c, _ in during):
                problems.append("no 503 during the outage: was it noticed?")
            if recovered is None:
                problems.append("no 2xx after Postgres came back")
            return finish(on, sent, groups, figures, problems)
        finally:
            stop(process)


def replicas_drill(alerts: int, groups: int) -> dict[str, Any]:
    """Two servers on one Postgres and one Redis; the storm alternates between them."""
    with stage(redis=True) as on:
        first, url_a = on.server()
        second, url_b = on.server()
        try:
            bodies = [am_body(n % groups, n) for n in range(alerts)]
            sent = storm([url_a, url_b], bodies)
            result = finish(on, sent, groups, {"replicas": 2}, [])
            if result["workers_that_delivered"] < 2:
                result["note"] = "one replica delivered everything (the other never claimed)"
            return result
        finally:
            stop(first)
            stop(second)


def _cli(on: Stage, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """Start a `warroom` command on the stage, as an operator's shell would run it."""
    broadcast = on.fake.channel_by_name("incidents").id
    full = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    full.update(
        DATABASE_URL=on.db_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        WARROOM_SLACK__API_URL=on.fake.base_url,
        WARROOM_SLACK__BROADCAST_CHANNEL=broadcast,
        **({"REDIS_URL": on.redis.url} if on.redis else {}),
        **env,
    )
    command = [str(Path(sys.executable).with_name("warroom")), "--as", "drill-oncall", *args]
    return subprocess.Popen(
        command, cwd=on.workdir, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def escalation_drill(alerts: int, groups: int) -> dict[str, Any]:
    """Escalation across two replicas and a SIGKILL, PagerDuty failing 30% of calls.

    ``groups`` incidents are opened by alerts (so nobody has acknowledged them), half through
    each replica; of every ten, four are acknowledged from the CLI and one resolved by its
    alert's resolve, well before their response time (90 s in the drill's scheme); the rest
    escalate: step 1 pages ``secondary``, step 2 (10 s later) tells the channel. When step 1
    comes due, the replica holding an escalation row (or its page) is killed (SIGKILL), and
    started again 3 s later; the rows it held wait out their lease (60 s). The audit
    (``bench/_escalation.py``): each left-alone incident escalated once per step and triggered
    once at ``secondary``, no acknowledged or resolved one escalated, every event's
    ``dedup_key`` the incident's key, no outbox row left failed.
    """
    del alerts  # one alert per incident
    keys = set(esc.ROUTING_KEYS.values())
    with (
        stage(redis=True) as on,
        FakePagerDuty(keys, fault_rate=0.3, seed=FAULT_SEED[0]) as pd,
    ):
        config = on.workdir / "warroom.yaml"
        config.write_text(esc.config_yaml(pd.url))
        env = {"WARROOM_CONFIG": str(config)}
        env |= {esc.KEY_ENV[name]: key for name, key in esc.ROUTING_KEYS.items()}
        engine = sa.create_engine(on.db_url)
        conn = engine.connect()
        figures: dict[str, Any] = {"replicas": 2, "pagerduty_fault_rate": pd.fault_rate}
        problems: list[str] = []
        first, url_a = on.server(env)
        servers = {"a": first}
        try:
            # Replica a alone first, so that its worker's id is known (the one that delivered).
            half = groups // 2
            sent = storm([url_a], [am_body(g, g) for g in range(half)])
            _until(lambda: esc.scalar(conn, "SELECT count(*) FROM outbox WHERE status = 'done'"))
            worker_a = esc.scalar(conn, "SELECT min(claimed_by) FROM outbox WHERE status = 'done'")
            servers["b"], url_b = on.server(env)
            rest = storm([url_a, url_b], [am_body(g, g) for g in range(half, groups)])
            sent.accepted |= {half + n for n in rest.accepted}
            sent.codes.update(rest.codes)
            _until(lambda: esc.scalar(conn, "SELECT count(*) FROM incident") >= groups)
            began = time.monotonic()
            labels = conn.execute(
                sa.text(
                    "SELECT i.key, a.labels FROM alert a JOIN incident i ON i.id = a.incident_id"
                )
            ).all()
            conn.rollback()
            group_of = {
                str(k): int(esc._json(lb)["alertname"].removeprefix("Storm")) for k, lb in labels
            }
            intent = {
                key: esc.ACKNOWLEDGE
                if g % 10 in (1, 3, 6, 8)
                else esc.RESOLVE
                if g % 10 == 4
                else esc.ESCALATE
                for key, g in group_of.items()
            }
            resolves = [
                am_body(g, g, status="resolved")
                for k, g in group_of.items()
                if intent[k] == esc.RESOLVE
            ]
            storm([url_a, url_b], resolves)
            acks = [k for k in sorted(intent) if intent[k] == esc.ACKNOWLEDGE]

            def ack(key: str) -> tuple[str | None, float]:
                process = _cli(on, env, "incident", "ack", key)
                _, err = process.communicate(timeout=120)
                code = process.returncode
                said = f"{key}: exit {code}: {err.decode()[-300:]}" if code else None
                return said, time.monotonic() - began

            # Four at a time (the machine has two cores), while step 1 is awaited below.
            pool = concurrent.futures.ThreadPoolExecutor(4)
            acked = [pool.submit(ack, key) for key in acks]

            # Step 1 comes due: kill the replica holding escalation rows (or their pages).
            # Best mid-batch, once some step has fired (its row may be committed but not yet
            # settled: the next worker must find it fired already); else as soon as any is held.
            deadline = time.monotonic() + esc.RESPONSE_TIME.total_seconds() + 30
            victim, held, seen = "a", [], 0.0
            while time.monotonic() < deadline:
                held = [
                    (i, kind, w)
                    for i, kind, dedupe, w in esc.held_rows(conn)
                    if kind == "escalate" or dedupe.startswith("escalate-page:")
                ]
                if held:
                    seen = seen or time.monotonic()
                    fired = esc.scalar(conn, f"SELECT count(*) FROM timeline_event {ESCALATED}")
                    if fired or time.monotonic() - seen > 5:
                        victim = "a" if any(w == worker_a for *_, w in held) else "b"
                        break
                time.sleep(0.01)
            killed = servers[victim]
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait()
            figures["killed_at_s"] = round(time.monotonic() - began, 1)
            time.sleep(1)
            victim_worker = (
                worker_a if victim == "a" else next((w for *_, w in held if w != worker_a), "")
            )
            left = [(i, kind) for i, kind, _, w in esc.held_rows(conn) if w == victim_worker]
            in_flight = {i for i, _ in left}
            figures["killed"] = f"replica {victim} ({victim_worker})"
            figures["killed_holding"] = dict(Counter(kind for _, kind in left))
            figures["escalations_before_kill"] = esc.scalar(
                conn, f"SELECT count(*) FROM timeline_event {ESCALATED}"
            )
            figures["held_rows_step_fired"] = esc.fired_but_unsettled(conn, in_flight)
            figures["rows_due_at_kill"] = esc.scalar(
                conn,
                "SELECT count(*) FROM outbox WHERE status = 'pending' AND next_attempt_at <= now()",
            )
            outcomes = [a.result() for a in acked]
            pool.shutdown()
            problems += [f"`warroom incident ack` failed: {f}" for f, _ in outcomes if f]
            figures["acks_done_at_s"] = round(max((t for _, t in outcomes), default=0.0), 1)
            if not held:
                problems.append("no escalation or page row was in flight: the kill proved nothing")
            time.sleep(2)
            servers[victim], _ = on.server(env)
            result = finish(on, sent, groups, figures, problems)
            record = esc.read_record(
                on.db_url, intent, list(pd.events), refused=len(pd.refused), in_flight=in_flight
            )
            paged, wrong = esc.audit_escalation(record)
            result |= paged
            result["pagerduty_requests"] = pd.requests
            result["pagerduty_faults"] = {str(c): n for c, n in sorted(pd.faults.items())}
            result["problems"] = result["problems"] + wrong
            return result
        finally:
            conn.close()
            engine.dispose()
            for process in servers.values():
                stop(process)


ESCALATED = "WHERE kind = 'escalated'"


def _until(check: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("the drill's stage did not get there in time")
        time.sleep(0.1)


DRILLS: dict[str, tuple[Callable[[int, int], dict[str, Any]], int, int]] = {
    "kill": (kill_drill, 1500, 15),
    "slack": (slack_drill, 2000, 40),
    "redis": (redis_drill, 1500, 15),
    "postgres": (postgres_drill, 1500, 15),
    "replicas": (replicas_drill, 3000, 30),
    "escalation": (escalation_drill, 20, 20),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("drill", choices=[*DRILLS, "all"])
    parser.add_argument("--alerts", type=int, help="alerts in the storm (default per drill)")
    parser.add_argument("--groups", type=int, help="alert groups = incidents (default per drill)")
    parser.add_argument("--seed", type=int, default=7, help="the Slack drill's faults")
    args = parser.parse_args()
    FAULT_SEED[0] = args.seed
    failed = []
    for name in DRILLS if args.drill == "all" else [args.drill]:
        drill, alerts, groups = DRILLS[name]
        print(f"== drill {name}")
        result = drill(args.alerts or alerts, args.groups or groups)
        result = {
            "drill": name,
            "alerts": args.alerts or alerts,
            "groups": args.groups or groups,
            **result,
        }
        for key, value in result.items():
            print(f"{key:<28}{value}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"drill-{name}.json").write_text(json.dumps(result, indent=2))
        if result["problems"]:
            print(f"DRILL {name} FAILED", file=sys.stderr)
            failed.append(name)
        else:
            print(f"drill {name} passed: nothing lost, nothing duplicated")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
