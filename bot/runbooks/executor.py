"""Running one step: resolve its kind and target, call the kind, turn anything into a result.

A target that is not configured, a :class:`~bot.runbooks.kinds.StepFailed` (down, timeout,
permission) and even a crashing kind all become a result graded ``error``: the responder
reads what happened, the caller never gets an exception. A crash is logged with a
reference id, and only the id is shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from bot.runbooks.kinds import StepCall, StepFailed, StepKind
from bot.runbooks.model import Step
from bot.runbooks.params import Param, ParamValue
from bot.runbooks.redact import Redactor
from bot.runbooks.results import StepResult, build
from bot.runbooks.settings import RunbookSettings
from bot.store.models import Incident

log = logging.getLogger(__name__)

DIAGNOSTIC, MITIGATION = "diagnostic", "mitigation"
#: How long past a step's own timeout the engine waits before abandoning a kind.
BACKSTOP_S = 10.0


def stored_params(params: Mapping[str, ParamValue]) -> dict[str, Any]:
    """Typed parameters as they are stored and shown (durations in seconds)."""
    return {name: Param.jsonable(value) for name, value in params.items()}


def incident_context(incident: Incident) -> dict[str, Any]:
    """What a step may know of its incident (a webhook sends it to the operator)."""
    return {
        "key": incident.key,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "service": incident.service,
        "impact": incident.impact,
        "roles": dict(incident.roles),
        "channel_id": incident.channel_id,
    }


class Executor:
    def __init__(self, kinds: Mapping[str, StepKind], settings: RunbookSettings) -> None:
        self.kinds = kinds
        self.settings = settings

    def configured(self, step: Step) -> bool:
        """Whether the step's kind is known and its target configured."""
        kind = self.kinds.get(step.kind)
        return (
            kind is not None
            and self.settings.targets.get(kind.target_type, step.target) is not None
        )

    def redactor(self) -> Redactor:
        # Read per run: the secrets are whatever the environment holds now.
        return Redactor(self.settings.targets.secrets())

    async def run(
        self,
        runbook: str,
        step: Step,
        params: dict[str, ParamValue],
        mode: str,
        incident: Incident,
        *,
        run_id: int | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> StepResult:
        kind = self.kinds.get(step.kind)
        if kind is None:
            return self.failed(runbook, step, mode, params, f"unknown kind {step.kind!r}")
        target = self.settings.targets.get(kind.target_type, step.target)
        if target is None:
            return self.failed(
                runbook,
                step,
                mode,
                params,
                f"{kind.target_type} target {step.target!r} is not configured "
                f"(add it under runbooks.targets.{kind.target_type})",
            )
        call = StepCall(
            runbook=runbook,
            step=step,
            spec=step.spec,
            target_name=step.target,
            target=target,
            params=params,
            mitigation=mode == MITIGATION,
            timeout=step.timeout_s,
            context={"incident": incident_context(incident), **(context or {})},
            run_id=run_id,
            max_rows=self.settings.max_rows,
        )
        start = time.perf_counter()
        outcome, error = None, None
        try:
            async with asyncio.timeout(step.timeout_s + BACKSTOP_S):
                outcome = await kind.run(call)
        except StepFailed as failed:
            error = str(failed)
        except TimeoutError:
            error = f"gave up after {step.timeout_s + BACKSTOP_S:g}s: the {kind.name} step hung"
        except Exception:
            reference = uuid.uuid4().hex[:8]
            log.exception(
                "runbook step %s/%s crashed (reference %s)",
                runbook,
                step.id,
                reference,
                extra={"incident": incident.key, "reference": reference},
            )
            error = f"internal error (reference {reference})"
        return build(
            runbook,
            step,
            mode,
            stored_params(params),
            outcome=outcome,
            error=error,
            duration_ms=round((time.perf_counter() - start) * 1000),
            redactor=self.redactor(),
            max_rows=self.settings.max_rows,
        )

    def failed(
        self, runbook: str, step: Step, mode: str, params: Mapping[str, Any], error: str
    ) -> StepResult:
        """The result of a step that could not even start."""
        return build(
            runbook,
            step,
            mode,
            dict(params),
            outcome=None,
            error=error,
            duration_ms=0,
            redactor=self.redactor(),
            max_rows=self.settings.max_rows,
        )
