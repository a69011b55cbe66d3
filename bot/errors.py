"""Every error warroom raises on purpose.

::

    WarroomError
    ├── UserError              text is safe to show a responder (Slack, CLI, web)
    │   ├── IncidentNotFound
    │   ├── IllegalTransition  e.g. acknowledging a resolved incident
    │   ├── InvalidSeverity
    │   ├── InvalidRole
    │   └── InvalidInput       a bad argument (empty title, unknown status…)
    ├── ConfigError            the settings or a config file are wrong (lists every problem)
    └── StorageUnavailable     the database did not answer: callers answer 503 and retry later

Anything else is a bug: the entry point logs it with a reference id and shows only that id.
"""

from __future__ import annotations


class WarroomError(Exception):
    """Base of every error warroom raises on purpose."""


class UserError(WarroomError):
    """An error whose message a responder can read and act on."""


class IncidentNotFound(UserError):
    def __init__(self, key: str) -> None:
        super().__init__(f"No incident {key}. `warroom incident list` shows the open ones.")
        self.key = key


class IllegalTransition(UserError):
    """A lifecycle change that the incident's current state does not allow."""


class InvalidSeverity(UserError):
    def __init__(self, given: str, allowed: list[str]) -> None:
        super().__init__(f"Unknown severity {given!r}: use one of {', '.join(allowed)}.")
        self.given = given
        self.allowed = allowed


class InvalidRole(UserError):
    def __init__(self, given: str, allowed: list[str]) -> None:
        super().__init__(f"Unknown role {given!r}: use one of {', '.join(allowed)}.")
        self.given = given
        self.allowed = allowed


class InvalidInput(UserError):
    """A bad argument, with a message that says what to give instead."""


class ConfigError(WarroomError):
    """The configuration is wrong; ``problems`` lists each (file, key, what is wrong)."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    """One configuration mistake: where it is and what is wrong."""

    __slots__ = ("key", "line", "message", "source")

    def __init__(self, *, source: str, key: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.key = key
        self.message = message
        self.line = line

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self})"


class StorageUnavailable(WarroomError):
    """The database could not be reached or timed out; nothing was written."""
