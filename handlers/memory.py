"""The server process's memory after a storm: glibc's allocator, capped and trimmed.

A storm allocates millions of short-lived objects in several threads (the web loop, the
fold thread, the side files' threads). glibc gives each thread that allocates an arena of
its own (up to 8 per core) and keeps what is freed in them: the process stays at its peak
long after the storm is folded. Two standard levers, both no-ops off glibc:

* :func:`cap_arenas` (what ``MALLOC_ARENA_MAX=2`` does), called before any thread starts;
* :class:`Trimmer`, which hands freed memory back (``malloc_trim``) once intake is quiet
  again, so a storm's peak is not the server's size for the rest of the day.

Measured with ``bench/ingest.lua`` (new alerts into 50 open groups, SQLite, 8 s storm,
RSS 25 s after it): 241 MB as it was, 211 MB with both.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # <malloc.h>
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, looked up once (``find_library`` runs ``ldconfig``), or ``None`` elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def cap_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas (unless ``MALLOC_ARENA_MAX`` says otherwise); whether it did."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give freed heap memory back to the system; whether glibc did (not: nothing to give)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


class Trimmer:
    """Trims once after each busy spell: when ``quiet()`` holds after it did not."""

    def __init__(
        self,
        quiet: Callable[[], bool],
        *,
        every: float = 5.0,
        trim: Callable[[], bool] = trim,
    ) -> None:
        self.quiet = quiet
        self.every = every
        self._trim = trim
        self.trims = 0
        self._busy_since_trim = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="memory-trim")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def check(self) -> None:
        """One look: note a busy spell, or trim at the end of one."""
        if not self.quiet():
            self._busy_since_trim = True
            return
        if self._busy_since_trim:
            self._busy_since_trim = False
            self.trims += 1
            # In a thread: on a large heap the trim takes milliseconds.
            await asyncio.to_thread(self._trim)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.check()
            except Exception:  # memory is a nicety: never stop the server for it
                log.warning("memory trim failed", exc_info=True)
