"""The errors of the runbook engine, all safe to show a responder.

::

    UserError (bot.errors)
    ├── RunbookNotFound      no runbook with that id
    ├── StepNotFound         the runbook has no such diagnostic or mitigation
    ├── InvalidInput (bot.errors)
    │   └── InvalidParameter a parameter is missing, unknown, or fails its type/bounds/enum
    └── Refused              a mitigation request, approval or confirmation was refused
        ├── NotAllowed       the person is not among the step's allowed roles, users or groups
        ├── SelfApproval     the requester cannot be the second person
        ├── ApprovalRequired a two-person step has not been approved yet
        └── RunNotPending    the run is done, running, refused or expired

Every :class:`Refused` is also written down (a ``step_run`` row and a timeline event) before
it is raised. A target that is down, a timeout or a permission error on the target is not an
error here: it is a result (grade ``error``) the responder reads.
"""

from __future__ import annotations

from bot.errors import InvalidInput, UserError


class RunbookNotFound(UserError):
    def __init__(self, runbook: str, known: list[str]) -> None:
        hint = f" Known runbooks: {', '.join(known)}." if known else ""
        super().__init__(f"No runbook {runbook!r}.{hint}")
        self.runbook = runbook


class StepNotFound(UserError):
    def __init__(self, runbook: str, step: str, what: str, known: list[str]) -> None:
        hint = f" It has: {', '.join(known)}." if known else f" It has no {what}s."
        super().__init__(f"Runbook {runbook!r} has no {what} {step!r}.{hint}")
        self.runbook = runbook
        self.step = step


class InvalidParameter(InvalidInput):
    """A parameter from chat was rejected before anything ran."""


class Refused(UserError):
    """A request, approval or confirmation that was refused (and recorded)."""


class NotAllowed(Refused):
    pass


class SelfApproval(Refused):
    pass


class ApprovalRequired(Refused):
    pass


class RunNotPending(Refused):
    pass
