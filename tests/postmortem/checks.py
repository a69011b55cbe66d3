"""Checks on rendered Markdown shared by the post-mortem tests."""

from __future__ import annotations

import re


def assert_tables_keep_their_shape(text: str) -> None:
    """Every row of every table has as many cells as the table's header."""
    cells = None
    for line in text.splitlines():
        if not line.startswith("|"):
            cells = None
            continue
        count = len(re.findall(r"(?<!\\)\|", line))
        if cells is None:
            cells = count
        assert count == cells, line
