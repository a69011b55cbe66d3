"""A load generator in its own process: POST Alertmanager bodies at a fixed concurrency.

Usage: python -m bench._load URL ALERTS_PER_BODY REQUESTS CONCURRENCY [SEED]
Prints one JSON line: throughput (requests/s and alerts/s), p50/p99 latency (ms), status codes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from statistics import quantiles


def body(n: int, per_body: int, seed: str) -> bytes:
    group = n % 50
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": f"Bench{group}", "instance": f"{seed}-{n}-{i}"},
            "annotations": {"summary": f"bench group {group}"},
            "startsAt": datetime(2026, 11, 26, 9, 0, tzinfo=UTC).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{seed}{n:08d}{i:04d}",
        }
        for i in range(per_body)
    ]
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="Bench{group}",run="{seed}"}}',
            "status": "firing",
            "receiver": "bench",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "truncatedAlerts": 0,
            "alerts": alerts,
        }
    ).encode()


async def run(url: str, per_body: int, total: int, concurrency: int, seed: str) -> dict:
    import httpx

    bodies = [body(n, per_body, seed) for n in range(total)]
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    queue = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            for n in queue:
                started = time.perf_counter()
                answer = await client.post(
                    url, content=bodies[n], headers={"content-type": "application/json"}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                codes[answer.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    cuts = quantiles(latencies, n=100)
    return {
        "requests": total,
        "alerts": total * per_body,
        "seconds": round(elapsed, 3),
        "rps": round(total / elapsed, 1),
        "alerts_per_s": round(total * per_body / elapsed, 1),
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "codes": dict(codes),
    }


if __name__ == "__main__":
    url, per_body, total, concurrency = sys.argv[1], *map(int, sys.argv[2:5])
    seed = sys.argv[5] if len(sys.argv) > 5 else "s"
    print(json.dumps(asyncio.run(run(url, per_body, total, concurrency, seed))))
