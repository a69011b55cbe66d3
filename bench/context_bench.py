"""Time to context: from the alert webhook to a channel with the pinned card and the diagnostics.

    python -m bench.context_bench [--incidents 20] [--gap 3 --gap 0]

One real `warroom serve` on a throwaway Postgres database, a fake Slack with Slack's real rate
limits, the built-in runbook db-connection-exhaustion with its target `main` pointing at that
local Postgres. Incidents go one at a time: each is a new Alertmanager group
(CriticalConnectionPoolUtilization on another instance), POSTed once; the fake is polled every
20 ms until the incident's channel holds the pinned card and every automatic diagnostic's
headline; only then does the next alert go (after ``--gap`` seconds). By default it runs twice:
with 3 s between incidents (Slack lets an app create 20 channels a minute, one per 3 s) and back
to back (later channels then wait for that Tier 2 limit). Reports min, p50, p99 and
max, in ms, of the webhook's answer, the channel's creation, the pinned card, the first
diagnostic headline and the full context; prints a table and writes bench/results/context.json.
An incident whose channel came over a second after its alert is counted: with incidents in
sequence, that is what a Tier 2 limit (conversations.create, pins.add: 20/min) would cause.
Exits 1 if an incident misses its context within the deadline or a diagnostic is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx

from bench.ingest import drop, postgres_url
from bench.slack_bench import RESULTS, start_server
from bot.runbooks.model import builtin_dir, load_runbooks
from bot.runbooks.text import GRADE_ICON
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import Channel

RUNBOOK = "db-connection-exhaustion"
ALERTNAME = "CriticalConnectionPoolUtilization"
POLL_S = 0.02
DEADLINE_S = 180.0
STAGES = ("answer", "channel", "card", "first_diagnostic", "context")


def am_body(n: int) -> bytes:
    """A firing Alertmanager 0.27 webhook (shaped like the vendored capture), group n."""
    labels = {
        "alertname": ALERTNAME,
        "instance": f"pg-{n}:5432",
        "service": "postgres",
        "severity": "critical",
    }
    annotations = {
        "summary": f"connection pool of pg-{n} above 95 %",
        "description": f"pg-{n} uses 97 % of max_connections.",
    }
    group = {"alertname": ALERTNAME, "instance": labels["instance"]}
    return json.dumps(
        {
            "receiver": "warroom",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": "2026-08-24T10:34:30.583Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=pool_utilisation",
                    "fingerprint": f"{n:016x}",
                }
            ],
            "groupLabels": group,
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": "http://alertmanager:9093",
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{ALERTNAME}", instance="{labels["instance"]}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


def expected_headlines() -> list[str]:
    """``(`runbook.step` on main``, as each diagnostic's headline has it."""
    book = next(rb for rb in load_runbooks([builtin_dir()]) if rb.id == RUNBOOK)
    steps = [s for s in book.diagnostics if not any(p.required for p in s.params.values())]
    return [f"(`{RUNBOOK}.{s.id}` on {s.target}," for s in steps]


def new_channel(fake: FakeSlack, seen: set[str]) -> Channel | None:
    fresh = [
        c
        for c in list(fake.workspace.channels.values())
        if c.name.startswith("inc-") and c.id not in seen
    ]
    return fresh[0] if fresh else None


def one_incident(
    client: httpx.Client, url: str, fake: FakeSlack, n: int, seen: set[str], wanted: list[str]
) -> tuple[dict[str, float], int]:
    """Milliseconds from the POST to each stage of incident n (missing: not reached), and how
    many of its diagnostics' headlines are errors."""
    at: dict[str, float] = {}
    heads: list[str] = []
    started = time.perf_counter()
    answer = client.post(url, content=am_body(n), headers={"content-type": "application/json"})
    at["answer"] = time.perf_counter() - started
    if answer.status_code != 200 or not answer.json().get("opened"):
        raise RuntimeError(f"incident {n}: webhook answered {answer.status_code} {answer.text}")
    channel: Channel | None = None
    while time.perf_counter() - started < DEADLINE_S:
        now = time.perf_counter() - started
        channel = channel or new_channel(fake, seen)
        if channel is not None:
            at.setdefault("channel", now)
            if channel.pins:
                at.setdefault("card", now)
            texts = [m.text for m in list(channel.messages.values()) if not m.is_reply]
            lines = [line for t in texts for line in t.splitlines()]
            heads = [line for line in lines if any(w in line for w in wanted)]
            if heads:
                at.setdefault("first_diagnostic", now)
            if "card" in at and len(heads) == len(wanted):
                at["context"] = now
                break
        time.sleep(POLL_S)
    if channel is not None:
        seen.add(channel.id)
    errors = sum(1 for h in heads if h.startswith(GRADE_ICON["error"]))
    return {stage: round(s * 1000, 1) for stage, s in at.items()}, errors


def stats(values: list[float]) -> dict[str, float]:
    cuts = quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {
        "min": min(values),
        "p50": round(median(values), 1),
        "p99": round(cuts[98], 1),
        "max": max(values),
    }


def run(incidents: int, gap: float) -> dict[str, Any]:
    wanted = expected_headlines()
    created = postgres_url()
    if created is None:
        raise SystemExit("no Postgres at 127.0.0.1:5432")
    name, db_url = created
    timings: list[dict[str, float]] = []
    errors = 0
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_fake_slack_in_thread(rate_limit_scale=1.0) as fake,
        ):
            config = Path(tmp) / "warroom.yaml"
            config.write_text(
                "runbooks:\n  targets:\n    postgres:\n      main: {dsn_env: APP_DATABASE_URL}\n"
            )
            env = {
                "WARROOM_CONFIG": str(config),
                "APP_DATABASE_URL": db_url.replace("+psycopg", "", 1),
            }
            broadcast = fake.channel_by_name("incidents").id
            process, base = start_server(db_url, fake.base_url, broadcast, Path(tmp), env)
            seen: set[str] = set()
            try:
                with httpx.Client(timeout=30) as client:
                    for n in range(incidents):
                        timing, failed = one_incident(
                            client, f"{base}/webhooks/alertmanager", fake, n, seen, wanted
                        )
                        timings.append(timing)
                        errors += failed
                        print(
                            f"incident {n + 1:>3}  "
                            + "  ".join(f"{k} {v:>7}" for k, v in timing.items())
                        )
                        if "context" not in timing:
                            break
                        time.sleep(gap)
            finally:
                process.terminate()
                process.wait(timeout=30)
            calls = dict(sorted(fake.calls_by_method.items()))
            ratelimited = fake.ratelimited_count
    finally:
        drop(name)
    complete = [t for t in timings if "context" in t]
    return {
        "incidents": incidents,
        "complete": len(complete),
        "diagnostic_errors": errors,
        # Tier 2 (conversations.create ~20/min) would show as a late channel.
        "channel_later_than_1s": sum(1 for t in timings if t.get("channel", 0) > 1000),
        "gap_s": gap,
        "diagnostics_per_incident": len(wanted),
        "rate_limit_scale": 1.0,
        "ms": {s: stats([t[s] for t in complete]) for s in STAGES if complete},
        "per_incident_ms": timings,
        "slack_calls": calls,
        "slack_429s": ratelimited,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument(
        "--gap", type=float, action="append", help="seconds between incidents (repeatable)"
    )
    args = parser.parse_args()
    runs = [run(args.incidents, gap) for gap in args.gap or [3.0, 0.0]]
    for result in runs:
        print(f"\n{args.incidents} incidents, {result['gap_s']} s apart")
        print(f"{'ms':<18}" + "".join(f"{k:>10}" for k in ("min", "p50", "p99", "max")))
        for stage, row in result["ms"].items():
            print(f"{stage:<18}" + "".join(f"{v:>10}" for v in row.values()))
        for key in ("complete", "diagnostic_errors", "channel_later_than_1s", "slack_429s"):
            print(f"{key:<24}{result[key]}")
        print(f"{'slack_calls':<24}{result['slack_calls']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"cores": os.cpu_count(), "python": platform.python_version()}}
    (RESULTS / "context.json").write_text(json.dumps({**report, "runs": runs}, indent=2))
    if any(r["complete"] != args.incidents or r["diagnostic_errors"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
