"""Severity schemes: ordered levels with response times and update intervals.

The built-in schemes come from the user's runbooks: ``p1-p4`` (the maintenance
runbook's incident classification, the default) and ``p0-p3`` (the setlist
operations runbook). Level 0 of ``levels`` is the most severe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from bot.errors import InvalidSeverity


@dataclass(frozen=True, slots=True)
class SeverityLevel:
    name: str
    label: str
    response_time: timedelta
    update_interval: timedelta
    description: str = ""

    @property
    def title(self) -> str:
        return f"{self.name} - {self.label}"


@dataclass(frozen=True, slots=True)
class SeverityScheme:
    levels: tuple[SeverityLevel, ...]
    default: str

    def __post_init__(self) -> None:
        names = [level.name for level in self.levels]
        if not names:
            raise ValueError("a severity scheme needs at least one level")
        if len({n.upper() for n in names}) != len(names):
            raise ValueError(f"severity names must be unique: {names}")
        if self.default not in names:
            raise ValueError(f"default severity {self.default!r} is not one of {names}")

    @property
    def names(self) -> list[str]:
        return [level.name for level in self.levels]

    def get(self, name: str) -> SeverityLevel:
        """The level called ``name`` (case-insensitive; ``1`` means ``P1`` in a P scheme)."""
        wanted = name.strip().upper()
        for level in self.levels:
            if wanted in (level.name.upper(), level.label.upper()):
                return level
            if wanted.isdigit() and level.name.upper() == f"P{wanted}":
                return level
        raise InvalidSeverity(name, self.names)

    def rank(self, name: str) -> int:
        """0 for the most severe level, growing as severity falls."""
        return self.levels.index(self.get(name))

    def highest(self, names: Iterable[str]) -> SeverityLevel:
        levels = [self.get(n) for n in names]
        if not levels:
            raise ValueError("highest() of no severities")
        return min(levels, key=self.levels.index)


_M = timedelta(minutes=1)
_H = timedelta(hours=1)

P1_P4 = SeverityScheme(
    levels=(
        SeverityLevel("P1", "Critical", 15 * _M, 30 * _M, "Complete outage, data loss"),
        SeverityLevel("P2", "High", 1 * _H, 1 * _H, "Partial outage, severe degradation"),
        SeverityLevel("P3", "Medium", 4 * _H, 4 * _H, "Feature failure, minor degradation"),
        SeverityLevel("P4", "Low", 24 * _H, 24 * _H, "Cosmetic issues, minor bugs"),
    ),
    default="P3",
)

P0_P3 = SeverityScheme(
    levels=(
        SeverityLevel(
            "P0",
            "Critical",
            5 * _M,
            15 * _M,
            "Application completely down, major security breach, data loss",
        ),
        SeverityLevel(
            "P1",
            "High",
            15 * _M,
            30 * _M,
            "Significant feature degradation, API response time >5 seconds",
        ),
        SeverityLevel(
            "P2", "Medium", 2 * _H, 2 * _H, "Minor feature issues, non-critical API failures"
        ),
        SeverityLevel("P3", "Low", 24 * _H, 24 * _H, "Cosmetic issues, documentation updates"),
    ),
    default="P2",
)

PRESETS: dict[str, SeverityScheme] = {"p1-p4": P1_P4, "p0-p3": P0_P3}
