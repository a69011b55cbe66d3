"""What the fault drills share: a retrying sender, the audit of what landed, and private
Redis and Postgres servers that a drill may stop and start without touching the machine's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.ingest import free_port
from bot.intake.journal import journal_left, sidecar_path


@dataclass
class Sent:
    """What the senders saw: which bodies got a 2xx, every status code, the slowest answer."""

    accepted: set[int] = field(default_factory=set)
    codes: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    # (seconds since the start, status or "conn-error"/"timeout", seconds taken) per attempt
    attempts: list[tuple[float, str, float]] = field(default_factory=list)


async def send(
    urls: list[str],
    bodies: list[bytes],
    sent: Sent,
    *,
    concurrency: int = 16,
    answer_within: float = 15.0,
    progress: Callable[[int], None] | None = None,
    pace: float = 0.0,
) -> None:
    """Send every body until it gets a 2xx, retrying through outages as Alertmanager does.

    Body ``n`` goes to ``urls[n % len(urls)]`` (several replicas share the load); ``urls`` may
    be replaced while sending (a restarted server listens on a new port).
    """
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * len(urls))
    async with httpx.AsyncClient(timeout=answer_within, limits=limits) as client:

        async def one(n: int) -> None:
            for _ in range(1200):
                async with gate:
                    url = urls[n % len(urls)]
                    began = time.monotonic()
                    try:
                        answer = await client.post(
                            f"{url}/webhooks/alertmanager",
                            content=bodies[n],
                            headers={"content-type": "application/json"},
                        )
                        code = str(answer.status_code)
                    except httpx.TimeoutException:
                        code = "timeout"  # a hang: the drill counts it as a failure
                    except httpx.TransportError:
                        code = "conn-error"  # the server is down: retry, as a sender would
                    took = time.monotonic() - began
                    sent.slowest_s = max(sent.slowest_s, took)
                    sent.codes[code] += 1
                    sent.attempts.append((round(began - started, 3), code, round(took, 3)))
                    if code.startswith("2"):
                        sent.accepted.add(n)
                        if progress is not None:
                            progress(len(sent.accepted))
                        return
                await asyncio.sleep(0.5)
            raise RuntimeError(f"body {n} was never accepted")

        async def paced() -> None:
            tasks = []
            for n in range(len(bodies)):
                tasks.append(asyncio.create_task(one(n)))
                if pace:
                    await asyncio.sleep(pace)
            await asyncio.gather(*tasks)

        await paced()


def wait_delivered(db_url: str, *, timeout: float = 600.0) -> bool:
    """Wait until the intake journal is folded and no outbox row is pending; False on
    timeout."""
    engine = sa.create_engine(db_url)
    side = sidecar_path(db_url)  # SQLite's journal is a file of its own
    journal = sa.create_engine(f"sqlite:///{side}") if side else engine
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with journal.connect() as conn:
                    unfolded = journal_left(conn)
                with engine.connect() as conn:
                    left = conn.execute(
                        sa.text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                    ).scalar_one()
                if left == 0 and unfolded == 0:
                    return True
            except sa.exc.OperationalError:
                pass  # the database is restarting
            time.sleep(1)
        return False
    finally:
        engine.dispose()
        journal.dispose()


def _first_marker(message: Any) -> str | None:
    """The outbox marker a message was first posted with (cards are edited later)."""
    blocks = message.edits[0].get("blocks") if message.edits else message.blocks
    if not blocks:
        return None
    block_id = blocks[0].get("block_id")
    return str(block_id) if block_id else None


def audit(db_url: str, fake: Any, accepted: int, groups: int) -> tuple[dict[str, Any], list[str]]:
    """What landed, and every way it is wrong: alerts lost or stored twice, incidents or
    channels not one per group, outbox rows undelivered, a message posted twice, messages of
    one channel out of their outbox order."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM alert")).scalar_one()
        distinct = conn.execute(
            sa.text("SELECT count(DISTINCT fingerprint) FROM alert")
        ).scalar_one()
        incidents = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
        outbox = dict(
            conn.execute(sa.text("SELECT status, count(*) FROM outbox GROUP BY status")).all()
        )
        workers = conn.execute(
            sa.text("SELECT count(DISTINCT claimed_by) FROM outbox WHERE status = 'done'")
        ).scalar_one()
        rows = conn.execute(
            sa.text("SELECT id, lane, kind, result FROM outbox WHERE status = 'done' ORDER BY id")
        ).all()
    engine.dispose()

    markers: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for channel in fake.workspace.channels.values():
        if channel.name.startswith("inc-"):
            channels[channel.name.split("-", 1)[1]] += 1
        for message in fake.messages(channel.id):
            marker = _first_marker(message)
            if marker is not None and marker.startswith("wr-"):
                markers[marker] += 1
    twice = sorted(m for m, n in markers.items() if n > 1)

    out_of_order = 0
    last_ts: dict[str, float] = {}
    for _id, lane, kind, result in rows:
        data = result if isinstance(result, dict) else _json(result)
        if kind not in ("message", "announce", "reminder") or "ts" not in data:
            continue
        ts = float(data["ts"])
        if ts < last_ts.get(lane, 0.0):
            out_of_order += 1
        last_ts[lane] = ts

    problems: list[str] = []
    if stored != accepted or distinct != stored:
        problems.append(f"{stored} alert rows ({distinct} distinct) for {accepted} accepted")
    if incidents != groups:
        problems.append(f"{incidents} incidents for {groups} groups")
    if outbox.get("pending") or outbox.get("failed"):
        problems.append(f"outbox not delivered: {outbox}")
    if sum(channels.values()) != groups:
        problems.append(f"{sum(channels.values())} incident channels for {groups} groups")
    if twice:
        problems.append(f"{len(twice)} message(s) posted more than once: {twice[:5]}")
    if out_of_order:
        problems.append(f"{out_of_order} message(s) out of order in their channel")
    figures = {
        "alerts_stored": stored,
        "incidents": incidents,
        "channels": sum(channels.values()),
        "outbox": outbox,
        "workers_that_delivered": workers,
        "messages_with_markers": sum(markers.values()),
        "messages_posted_twice": len(twice),
        "messages_out_of_order": out_of_order,
    }
    return figures, problems


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else {}
    return loaded if isinstance(loaded, dict) else {}


class PrivateRedis:
    """A redis-server of the drill's own, on a free port, that can be stopped and started."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        _wait(lambda: _redis_ping(self.port), "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def keys(self, pattern: str) -> int:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "--scan", "--pattern", pattern],
            capture_output=True,
            text=True,
            check=True,
        )
        return len(out.stdout.split())


class PrivatePostgres:
    """A Postgres cluster of the drill's own (initdb in a temporary directory, run as the
    ``postgres`` user when we are root), so a drill can stop and restart it."""

    def __init__(self) -> None:
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bindir:
            raise SystemExit("this drill needs PostgreSQL's server binaries (Debian: postgresql)")
        self.bin = bindir[-1]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="warroom-pg-"))
        self.data = self.dir / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.dir / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        raise SystemExit("this drill needs redis-server (Debian: redis-server)")
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up")
