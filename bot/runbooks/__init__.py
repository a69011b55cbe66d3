"""Runbooks: YAML data of checks and fixes, run safely from chat and recorded on the timeline.

- :mod:`~bot.runbooks.model` — the YAML format, its models, ``load_runbooks`` (``file:line`` errors)
- :mod:`~bot.runbooks.params` — typed step parameters (int, float, string, identifier, duration)
- :mod:`~bot.runbooks.grading` — thresholds → green / yellow / red, with the reason
- :mod:`~bot.runbooks.kinds` — the ``StepKind`` interface and the ``KINDS`` registry
- :mod:`~bot.runbooks.postgres`, :mod:`~bot.runbooks.redis_kind`, :mod:`~bot.runbooks.http`,
  :mod:`~bot.runbooks.webhook` — the built-in kinds, registered below like a user's would be
- :mod:`~bot.runbooks.targets`, :mod:`~bot.runbooks.settings` — where steps run, ``runbooks:``
- :mod:`~bot.runbooks.redact` — secrets out of every output
- :mod:`~bot.runbooks.results` — ``StepResult``: graded, capped, redacted, digested
- :mod:`~bot.runbooks.executor` — one step run: kind, target, timeout, errors as results
- :mod:`~bot.runbooks.audit` — ``step_run`` rows and the timeline events that tell them
- :mod:`~bot.runbooks.engine` — ``Runbooks``: match, diagnose, request, approve, confirm
"""

from __future__ import annotations

from bot.runbooks.engine import Pending, Runbooks, load_configured
from bot.runbooks.grading import Grade, Threshold
from bot.runbooks.http import HttpKind
from bot.runbooks.kinds import KINDS, Outcome, StepCall, StepFailed, StepKind, register_kind
from bot.runbooks.model import Mitigation, Runbook, Step, builtin_dir, load_runbooks
from bot.runbooks.postgres import PostgresKind
from bot.runbooks.redis_kind import RedisKind
from bot.runbooks.results import StepResult
from bot.runbooks.settings import RunbookSettings
from bot.runbooks.targets import TargetsConfig
from bot.runbooks.webhook import WebhookKind

for _kind in (PostgresKind(), RedisKind(), HttpKind(), WebhookKind()):
    register_kind(_kind)

__all__ = [
    "KINDS",
    "Grade",
    "HttpKind",
    "Mitigation",
    "Outcome",
    "Pending",
    "PostgresKind",
    "RedisKind",
    "Runbook",
    "RunbookSettings",
    "Runbooks",
    "Step",
    "StepCall",
    "StepFailed",
    "StepKind",
    "StepResult",
    "TargetsConfig",
    "Threshold",
    "WebhookKind",
    "builtin_dir",
    "load_configured",
    "load_runbooks",
    "register_kind",
]
