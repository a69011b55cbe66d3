"""Bounded webhook fuzzer: hostile and ordinary bodies against a real `warroom serve`.

For each source (alertmanager, grafana, pagerduty, datadog, events) it sends ``--bodies``
generated bodies (default 5,000; seeded, so a run can be repeated) to an open endpoint and to
one guarded by a bearer token. The generator mixes real sender bodies (from
tests/data/payloads, made unique), exact repeats of them, and hostile shapes: JSON nested
2,000 to 100,000 levels deep, integers of 21 to 500,000 digits, non-finite numbers, lone
surrogates, NUL characters, long identities, wrong and mixed types, truncated bodies and
random bytes, also placed inside a real body at a random field or key; and requests with a
missing or wrong token or no ``Bearer`` scheme word.

It asserts: no answer is a 5xx; every exact repeat of an accepted body is answered
``duplicate``; once the intake journal is folded, the database holds exactly one delivery row
per delivery answered 2xx (its key as the server computes it) and no other, so nothing
accepted was lost, nothing refused was stored and nothing was stored twice; ``/readyz`` answers 200
at the end. Prints a table and writes bench/results/fuzz.json.

    python -m bench.fuzz_webhooks [--bodies 5000] [--seed 15] [--database postgres|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.ingest import Store, drop, free_port, postgres_url, wait_ready
from bot.intake.alerts.decode import decode_body
from bot.intake.alerts.registry import get_parser
from bot.intake.fold import delivery_key

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAYLOADS = ROOT / "tests" / "data" / "payloads"
SOURCES = ("alertmanager", "grafana", "pagerduty", "datadog", "events")
FOLDERS = {
    "alertmanager": "alertmanager",
    "grafana": "grafana",
    "pagerduty": "pagerduty",
    "datadog": "datadog",
    "events": "pagerduty_events_v2",
}
TOKEN = "fuzz-token"
TOKEN_ENV = "FUZZ_WEBHOOK_TOKEN"
MAX_BODY = 1024 * 1024
CONCURRENCY = 8

# What a generated body is, and how often (weights).
KINDS: dict[str, int] = {
    "valid": 14,  # a real body made unique: should be accepted and stored once
    "repeat": 5,  # the exact bytes of an earlier body again
    "value": 40,  # a real body with one value replaced by a hostile one
    "key": 8,  # a real body with a hostile object key added
    "deep": 8,  # the whole body nested 2,000-100,000 levels deep
    "random": 10,  # random JSON of mixed types
    "truncated": 5,  # a real body cut short
    "bytes": 5,  # random bytes
    "auth": 5,  # a real body to the guarded endpoint without a proper Bearer token
}


def config_yaml() -> str:
    """An open and a token-guarded endpoint per source."""
    lines = ["webhooks:"]
    for source in SOURCES:
        lines += [f"  {source}:", f"    source: {source}"]
        lines += [f"  {source}-auth:", f"    source: {source}", f"    token_env: {TOKEN_ENV}"]
    return "\n".join(lines) + "\n"


def real_bodies(source: str) -> list[Any]:
    folder = PAYLOADS / FOLDERS[source]
    bodies = [json.loads(path.read_bytes()) for path in sorted(folder.glob("*.json"))]
    if not bodies:
        raise SystemExit(f"no real {source} bodies in {folder}")
    return bodies


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    repeat_of: int | None = None  # index of the case whose exact body (and endpoint) it repeats


def _deep(rng: random.Random) -> str:
    depth = rng.choice((2_000, 5_000, 20_000, 100_000))
    shape = rng.randrange(4)
    if shape == 0:
        return "[" * depth + "]" * depth
    if shape == 1:
        return '{"a":' * depth + "1" + "}" * depth
    if shape == 2:
        return "[" * depth  # never closed
    return '[{"a":' * (depth // 2) + "null" + "}]" * (depth // 2)


def _huge_int(rng: random.Random) -> str:
    digits = rng.choice((21, 40, 80, 4_300, 4_301, 5_000, 100_000, 500_000))
    return rng.choice(("", "-")) + str(rng.randint(1, 9)) + "9" * (digits - 1)


HOSTILE_TEXT = (
    '"\\ud800"',
    '"\\udfff"',
    '"alert\\ud800name"',
    '"\\udc00\\ud800"',  # a pair in the wrong order: two lone surrogates
    '"\\u0000"',
    '"a\\u0000b"',
    "1e400",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "1" + "0" * 400 + ".5",
    "18446744073709551616",
    "-18446744073709551616",
    "9223372036854775808",
    '[1, "a", null, true, {}, [], 2.5]',
    '{"": {"": ""}}',
    "true",
    "false",
    "null",
    "0",
    "-0.0",
    '""',
    '"\\ud83d\\ude00 ok"',  # a valid pair: text, accepted where a string is
    '"$ALERT_ID"',
)
HOSTILE_BYTES = (b'"\xed\xa0\x80"', b'"\x00"', b'"\xff"', b'"a\nb"')
HOSTILE_KEYS = ('"\\ud800"', '"a\\u0000"', '"\\udfff\\u0000"', '""', '"' + "k" * 5_000 + '"')


def hostile_value(rng: random.Random) -> bytes:
    pick = rng.randrange(10)
    if pick < 2:
        return _deep(rng).encode()
    if pick < 4:
        return _huge_int(rng).encode()
    if pick == 4:
        return rng.choice(HOSTILE_BYTES)
    if pick == 5:
        return ('"' + "x" * rng.choice((201, 256, 501, 5_000, 100_000)) + '"').encode()
    if pick == 6:
        return json.dumps(random_json(rng)).encode()
    return rng.choice(HOSTILE_TEXT).encode()


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 4 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice((True, False))
    if pick == 2:
        return rng.choice((0, -1, 2**63, -(2**63), rng.randint(-(10**12), 10**12)))
    if pick == 3:
        return rng.choice((0.5, -1e300, 1e-300, rng.random()))
    if pick in (4, 5):
        return rng.choice(("", "firing", "resolved", "4", "1", "trigger", "x" * 10, "ünï😀"))
    if pick in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ("alerts", "status", "labels", "event", "data", "payload", "version", "a", "")
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))


def _containers(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        yield prefix
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _containers(item, (*prefix, key))


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


PLACEHOLDER = "__warroom_fuzz__"


def splice(body: Any, path: tuple[Any, ...], raw: bytes) -> bytes:
    """``body`` as JSON with the value at ``path`` replaced by the raw JSON text ``raw``."""
    _at(body, path[:-1])[path[-1]] = PLACEHOLDER
    text = json.dumps(body).encode()
    return text.replace(json.dumps(PLACEHOLDER).encode(), raw, 1)


def unique(body: Any, n: int, rng: random.Random) -> Any:
    """A real body that is no earlier body: a fresh label, id or key in it."""
    nonce = f"fuzz-{n}-{rng.randrange(10**9)}"
    if not isinstance(body, dict):
        return body
    for alert in body.get("alerts") or []:
        if isinstance(alert, dict) and isinstance(alert.get("labels"), dict):
            alert["labels"]["fuzz"] = nonce
            alert.pop("fingerprint", None)
    event = body.get("event")
    if isinstance(event, dict):
        event["id"] = nonce
        if isinstance(event.get("data"), dict):
            event["data"]["id"] = nonce
    if "dedup_key" in body:
        body["dedup_key"] = nonce
    if source_is_datadog(body):
        body["aggreg_key"] = nonce
        for key in ("id", "event_id"):  # Datadog's delivery id
            if key in body:
                body[key] = nonce
    body["fuzz_nonce"] = nonce
    return body


def source_is_datadog(body: dict[str, Any]) -> bool:
    return any(key in body for key in ("aggreg_key", "alert_id", "title", "alert_transition"))


def generate(source: str, count: int, seed: int) -> list[Case]:
    """``count`` cases for ``source``, the same for the same seed."""
    rng = random.Random(f"{seed}:{source}")
    reals = real_bodies(source)
    kinds = list(KINDS)
    weights = [KINDS[k] for k in kinds]
    cases: list[Case] = []
    valid: list[int] = []
    for n in range(count):
        kind = rng.choices(kinds, weights)[0]
        endpoint = source if rng.random() < 0.5 else f"{source}-auth"
        headers = {"authorization": f"Bearer {TOKEN}"} if endpoint.endswith("-auth") else {}
        if kind == "repeat" and not valid:
            kind = "valid"
        real = json.loads(json.dumps(rng.choice(reals)))
        if kind == "valid":
            case = Case(kind, json.dumps(unique(real, n, rng)).encode(), endpoint, headers)
            valid.append(n)
        elif kind == "repeat":
            index = rng.choice(valid)
            original = cases[index]
            case = Case(kind, original.body, original.endpoint, original.headers, index)
        elif kind == "value":
            paths = list(_paths(real))
            body = splice(real, rng.choice(paths), hostile_value(rng)) if paths else b"{}"
            case = Case(kind, body, endpoint, headers)
        elif kind == "key":
            target = _at(real, rng.choice(list(_containers(real)) or [()]))
            if isinstance(target, dict):
                target[PLACEHOLDER] = 1
            text = json.dumps(real).encode()
            key = rng.choice(HOSTILE_KEYS).encode()
            body = text.replace(json.dumps(PLACEHOLDER).encode(), key, 1)
            case = Case(kind, body, endpoint, headers)
        elif kind == "deep":
            case = Case(kind, _deep(rng).encode(), endpoint, headers)
        elif kind == "random":
            case = Case(kind, json.dumps(random_json(rng)).encode(), endpoint, headers)
        elif kind == "truncated":
            text = json.dumps(real).encode()
            case = Case(kind, text[: rng.randrange(len(text))], endpoint, headers)
        elif kind == "bytes":
            data = rng.randbytes(rng.randrange(2_048))
            case = Case(kind, data, endpoint, headers)
        else:  # auth: the token alone, another scheme, a wrong token, nothing
            wrong = rng.choice(
                (TOKEN, f"Token {TOKEN}", f"Basic {TOKEN}", "Bearer wrong", "Bearer", "")
            )
            headers = {"authorization": wrong} if wrong else {}
            body = json.dumps(unique(real, n, rng)).encode()
            case = Case(kind, body, f"{source}-auth", headers)
        if len(case.body) > MAX_BODY:
            case = Case(case.kind, case.body[:MAX_BODY], case.endpoint, case.headers)
        cases.append(case)
    return cases


@dataclass
class Tally:
    """What the server answered, per source and per kind of body."""

    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    accepted: int = 0  # 2xx and not "duplicate"
    #: (endpoint, delivery key) of every 2xx answer: each must be stored, exactly once.
    keys: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    def add(self, case: Case, status: int, answer: Any, seconds: float) -> None:
        label = str(status)
        if status in (200, 202) and isinstance(answer, dict):  # 202: journaled, folded behind
            label = f"{status} {answer.get('status')}"
            if answer.get("status") != "duplicate":
                self.accepted += 1
            self.keys.add((case.endpoint, server_key(case)))
        self.statuses[label] += 1
        self.by_kind.setdefault(case.kind, Counter())[label] += 1
        self.slowest_s = max(self.slowest_s, seconds)
        if status >= 500:
            self.problems.append(f"{status} for a {case.kind} body: {case.body[:120]!r}")
        elif 400 <= status < 500 and not (isinstance(answer, dict) and answer.get("error")):
            self.problems.append(f"{status} without an error message ({case.kind})")
        if case.kind == "auth" and status != 401:
            self.problems.append(f"{status} for a request without a proper Bearer token")


def server_key(case: Case) -> str:
    """The delivery key warroom gives a body it accepted (``handlers.webhooks``): the
    ``X-Webhook-Id`` header, else the delivery id the body names, else the body's digest.
    A 202 is answered before the fold, which may find the delivery stored already (the
    same PagerDuty event id in other bytes, say): the keys, not the answers, are counted."""
    header = case.headers.get("x-webhook-id")
    if header:
        return delivery_key(case.body, header)
    source = case.endpoint.removesuffix("-auth")
    delivery = get_parser(source)(decode_body(case.body))  # it was accepted: it parses
    return delivery_key(case.body, delivery.delivery_id)


def check_answer(case: Case, status: int, answer: Any, first: dict[int, Any]) -> str | None:
    """A repeat of an accepted body must be answered duplicate."""
    if case.repeat_of is None:
        return None
    original = first.get(case.repeat_of)
    accepted = original is not None and original[0] in (200, 202) and status in (200, 202)
    if accepted and answer.get("status") != "duplicate":
        return f"an exact repeat was {answer.get('status')}, not duplicate"
    return None


async def send_all(base: str, cases: list[Case], tally: Tally) -> None:
    answers: dict[int, Any] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        # Originals first, so a repeat always follows the answer to its original.
        order = [i for i, c in enumerate(cases) if c.repeat_of is None]
        order += [i for i, c in enumerate(cases) if c.repeat_of is not None]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in order:
            queue.put_nowait(index)
        originals_left = len([c for c in cases if c.repeat_of is None])
        originals_done = asyncio.Event()
        if originals_left == 0:
            originals_done.set()

        async def worker() -> None:
            nonlocal originals_left
            while not queue.empty():
                index = queue.get_nowait()
                case = cases[index]
                if case.repeat_of is not None:
                    await originals_done.wait()
                headers = {"content-type": "application/json", **case.headers}
                started = time.monotonic()
                response = await client.post(
                    f"/webhooks/{case.endpoint}", content=case.body, headers=headers
                )
                seconds = time.monotonic() - started
                try:
                    answer = response.json()
                except ValueError:
                    answer = None
                answers[index] = (response.status_code, answer)
                tally.add(case, response.status_code, answer, seconds)
                problem = check_answer(case, response.status_code, answer, answers)
                if problem:
                    tally.problems.append(problem)
                if case.repeat_of is None:
                    originals_left -= 1
                    if originals_left == 0:
                        originals_done.set()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def stored_deliveries(database_url: str) -> list[tuple[str, str]]:
    """(endpoint, delivery key) of every stored delivery, once the intake journal is folded
    (a 202 is stored, folded behind)."""
    store = Store(database_url)
    try:
        store.drain(timeout=600)
    finally:
        store.engine.dispose()
        store.journal.dispose()
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT endpoint, delivery_key FROM webhook_delivery"))
            return [(str(endpoint), str(key)) for endpoint, key in rows]
    finally:
        engine.dispose()


def serve(database_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`warroom serve` on a free port with the fuzz endpoints (as bench.ingest.start does)."""
    port = free_port()
    config = workdir / "fuzz.yaml"
    config.write_text(config_yaml())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env.update(
        DATABASE_URL=database_url,
        WARROOM_SERVER__PORT=str(port),
        WARROOM_LOG_LEVEL="ERROR",
        WARROOM_CONFIG=str(config),
    )
    env[TOKEN_ENV] = TOKEN
    command = [str(Path(sys.executable).with_name("warroom")), "serve"]
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/webhooks/alertmanager", process)
    return process, base


def table(results: dict[str, Any]) -> str:
    labels = sorted({label for r in results["sources"].values() for label in r["statuses"]})
    head = f"{'source':<14}{'bodies':>8}" + "".join(f"{label:>16}" for label in labels)
    lines = [head, "-" * len(head)]
    for source, r in results["sources"].items():
        cells = "".join(f"{r['statuses'].get(label, 0):>16}" for label in labels)
        lines.append(f"{source:<14}{r['bodies']:>8}{cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=5_000, help="bodies per source")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="warroom-fuzz-"))
    pg = postgres_url() if args.database == "postgres" else None
    if args.database == "postgres" and pg is None:
        raise SystemExit("Postgres is not reachable (set WARROOM_TEST_POSTGRES)")
    database_url = pg[1] if pg else f"sqlite:///{workdir / 'fuzz.db'}"
    process, base = serve(database_url, workdir)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "database": args.database,
        "seed": args.seed,
        "bodies_per_source": args.bodies,
        "sources": {},
    }
    problems: list[str] = []
    accepted = 0
    keys: set[tuple[str, str]] = set()
    started = time.monotonic()
    try:
        for source in SOURCES:
            cases = generate(source, args.bodies, args.seed)
            tally = Tally()
            t0 = time.monotonic()
            asyncio.run(send_all(base, cases, tally))
            accepted += tally.accepted
            keys |= tally.keys
            problems += [f"{source}: {p}" for p in tally.problems]
            results["sources"][source] = {
                "bodies": len(cases),
                "bytes": sum(len(c.body) for c in cases),
                "seconds": round(time.monotonic() - t0, 1),
                "slowest_s": round(tally.slowest_s, 3),
                "statuses": dict(sorted(tally.statuses.items())),
                "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(tally.by_kind.items())},
                "problems": len(tally.problems),
            }
            print(f"{source}: {len(cases)} bodies in {results['sources'][source]['seconds']} s")
        ready = httpx.get(f"{base}/readyz", timeout=10)
        results["readyz"] = ready.status_code
        if ready.status_code != 200:
            problems.append(f"/readyz answered {ready.status_code}: {ready.text[:200]}")
        rows = stored_deliveries(database_url)
        stored = set(rows)
        results["accepted"] = accepted
        results["accepted_deliveries"] = len(keys)
        results["stored_deliveries"] = len(rows)
        if len(rows) != len(stored):
            problems.append(f"{len(rows) - len(stored)} deliveries stored twice")
        if keys - stored:
            problems.append(f"{len(keys - stored)} deliveries answered 2xx but not stored")
        if stored - keys:
            problems.append(f"{len(stored - keys)} deliveries stored but never answered 2xx")
        if process.poll() is not None:
            problems.append(f"the server exited with {process.returncode}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if pg:
            drop(pg[0])
    total: Counter[str] = Counter()
    for r in results["sources"].values():
        total.update(r["statuses"])
    results["total"] = dict(sorted(total.items()))
    results["server_5xx"] = sum(n for label, n in total.items() if label.startswith("5"))
    results["seconds"] = round(time.monotonic() - started, 1)
    # The server's own errors (background delivery included): the exception lines, counted.
    logged = Counter(
        line[:200] for line in stderr.splitlines() if re.match(r"[\w.]+(Error|Exception): ", line)
    )
    results["server_errors_logged"] = dict(logged.most_common(10))
    results["problems"] = problems[:50]
    results["passed"] = not problems
    print(table(results))
    print(
        f"answered as new {results.get('accepted')}, deliveries answered 2xx "
        f"{results.get('accepted_deliveries')}, stored {results.get('stored_deliveries')}, "
        f"/readyz {results.get('readyz')}, 5xx {results['server_5xx']}, "
        f"{results['seconds']} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems[:20]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
