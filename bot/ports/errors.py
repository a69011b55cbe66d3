"""The errors every port after paging shares (status page, tickets, export).

::

    PortError
    ├── Throttled    429 or the vendor's rate limit: not applied; try after ``retry_after`` s
    ├── Unavailable  connection lost, timeout, 5xx; ``uncertain`` if it may have been applied
    └── Refused      a permanent refusal (invalid request, bad credentials, unknown target)

The worker retries :class:`Throttled` and :class:`Unavailable` through the outbox with backoff
and never retries :class:`Refused`; the message of each is shown to the responder as it is, so
it names the target and says what the vendor answered.
"""

from __future__ import annotations


class PortError(Exception):
    """Base of the errors an adapter raises through a port."""


class Throttled(PortError):
    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(PortError):
    def __init__(self, message: str, *, uncertain: bool) -> None:
        super().__init__(message)
        self.uncertain = uncertain


class Refused(PortError):
    """Trying again will not help: the message says why."""


class NoAdapter(PortError):
    """This process has no adapter for the port (a CLI run): a server's worker delivers it."""
