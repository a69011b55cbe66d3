"""The server hands a storm's freed memory back once intake is quiet again."""

from __future__ import annotations

import platform

from handlers.memory import Trimmer, trim


async def test_trims_once_at_the_end_of_each_busy_spell() -> None:
    quiet = [True]
    calls: list[int] = []

    def trimmed() -> bool:
        calls.append(1)
        return True

    trimmer = Trimmer(lambda: quiet[0], trim=trimmed)

    await trimmer.check()  # quiet from the start: nothing was freed, no trim
    assert calls == []
    quiet[0] = False
    await trimmer.check()
    await trimmer.check()
    assert calls == []  # never in the middle of a storm
    quiet[0] = True
    await trimmer.check()
    await trimmer.check()  # still quiet: once is enough
    assert calls == [1]
    quiet[0] = False
    await trimmer.check()
    quiet[0] = True
    await trimmer.check()
    assert calls == [1, 1]


def test_trim_gives_freed_memory_back_on_glibc_and_is_a_no_op_elsewhere() -> None:
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # ~128 MB, then freed
    del blocks
    assert trim() is (platform.libc_ver()[0] == "glibc")
