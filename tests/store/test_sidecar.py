"""Side files: quick writes on the event loop's thread, falling back to the file's thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.store import sidecar
from bot.store.sidecar import SideFile, write_rows

SCHEMA = "CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"


def insert(rows: int) -> str:
    return "INSERT INTO entry (body) VALUES " + ", ".join(["(?)"] * rows)  # noqa: S608


def append(conn: sqlite3.Connection, rows: list[tuple[bytes]]) -> str:
    write_rows(conn, insert, rows)
    return threading.current_thread().name


def count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM entry").fetchone()[0])


def test_a_quick_write_runs_on_the_loop_thread_and_waits_for_a_lock_in_the_files_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db-side"

    async def main() -> list[str]:
        side = SideFile(path, 5.0, SCHEMA, what="the test file")
        try:
            free = await side.quick(append, [(b"a",), (b"b",)])
            # Another process's writer holds the lock for a while: the write waits for it
            # in the file's thread instead of failing or blocking the loop.
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            release = asyncio.get_running_loop().call_later(0.3, holder.execute, "COMMIT")
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticker = asyncio.create_task(tick())
            locked = await side.quick(append, [(b"c",)])
            ticker.cancel()
            release.cancel()
            holder.close()
            assert ticks >= 10, "the loop was blocked while the lock was held"
            return [free, locked]
        finally:
            await side.close()

    free, locked = asyncio.run(main())
    assert free == threading.main_thread().name
    assert locked.startswith("side-")
    assert count(path) == 3


def test_quick_writes_leave_the_checkpoints_to_the_files_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop thread's connection never copies the log into the file (a sync); every
    so many writes go to the thread, whose connection does, so the log stays short."""
    monkeypatch.setattr(sidecar, "CHECKPOINT_EVERY", 8)
    path = tmp_path / "db-side"
    body = b"x" * 8000  # two pages a row: the 1,000-page log limit is passed quickly

    async def main() -> list[str]:
        side = SideFile(path, 5.0, SCHEMA, what="the test file")
        try:
            return [await side.quick(append, [(body,)] * 20) for _ in range(64)]
        finally:
            await side.close()

    threads = asyncio.run(main())
    assert threads.count(threading.main_thread().name) == 56
    assert count(path) == 64 * 20
    log = Path(f"{path}-wal")
    # 64 × 20 rows of 2 pages would be a 10 MB log; the thread's checkpoints keep
    # rewriting it from the start instead.
    assert not log.exists() or log.stat().st_size < 6_000_000, log.stat().st_size
