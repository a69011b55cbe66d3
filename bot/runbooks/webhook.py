"""The ``webhook`` kind: POST the incident's context to an operator's endpoint, keep the answer.

For the actions warroom cannot take itself — roll back a deployment, scale replicas, open a
circuit breaker, switch to cache-only mode — an operator exposes an endpoint and warroom
calls it, only as a confirmed mitigation::

    kind: webhook
    target: ops                  # runbooks.targets.webhooks.ops (url, token_env → Bearer)
    action: rollback             # tells the endpoint what to do
    payload: {service: api, replicas: "{replicas}"}   # static, {name} fills a whole value
    expect_status: [200, 201, 202, 204]

The body is JSON: ``action``, ``payload``, ``params``, ``run_id``, ``runbook``, ``step``,
``incident`` (key, title, severity, status, service, roles, channel), ``requested_by``,
``approved_by``, ``confirmed_by``. The ``Idempotency-Key`` header is ``warroom-run-<id>``, so
an endpoint can recognise a retry. Any other status than expected fails the run; the answer
(status, JSON or text) is the result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from bot.runbooks.http import BODY_MAX, fill_json
from bot.runbooks.kinds import Outcome, Problem, StepCall, StepFailed, jsonable
from bot.runbooks.params import Param, format_duration
from bot.runbooks.targets import TargetType, TargetUnavailable, WebhookTarget

_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    payload: dict[str, Any] = {}
    expect_status: list[int] = [200, 201, 202, 204]

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,63}", value):
            raise ValueError("action is a lowercase word, e.g. rollback or scale_replicas")
        return value


def _slots(value: Any) -> set[str]:
    if isinstance(value, str):
        whole = _SLOT.fullmatch(value)
        return {whole.group(1)} if whole else set()
    if isinstance(value, list):
        return set().union(*(_slots(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_slots(v) for v in value.values())) if value else set()
    return set()


class WebhookKind:
    """Registered as ``webhook``; targets come from ``runbooks.targets.webhooks``."""

    name = "webhook"
    target_type: TargetType = "webhooks"
    spec_model = WebhookSpec
    mitigation_only = True

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport

    def check(
        self, spec: WebhookSpec, params: Mapping[str, Param], *, mitigation: bool
    ) -> list[Problem]:
        return [
            Problem("payload", f"{{{name}}} names no declared parameter")
            for name in sorted(_slots(spec.payload))
            if name not in params
        ]

    async def run(self, call: StepCall) -> Outcome:
        spec: WebhookSpec = call.spec
        target = call.target
        assert isinstance(target, WebhookTarget)
        try:
            token = target.token()
        except TargetUnavailable as error:
            raise StepFailed(str(error)) from None
        headers = {"User-Agent": "warroom-runbook"}
        if call.run_id is not None:
            headers["Idempotency-Key"] = f"warroom-run-{call.run_id}"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = {
            "action": spec.action,
            "payload": fill_json(spec.payload, call.params),
            "params": {k: Param.jsonable(v) for k, v in call.params.items()},
            "run_id": call.run_id,
            "runbook": call.runbook,
            "step": call.step.id,
            **dict(call.context),
        }
        where = f"webhook {call.target_name!r}"
        async with httpx.AsyncClient(
            transport=self.transport, timeout=httpx.Timeout(call.timeout), follow_redirects=False
        ) as client:
            start = time.perf_counter()
            try:
                response = await client.post(target.url, json=body, headers=headers)
            except httpx.TimeoutException:
                took = format_duration(timedelta(seconds=call.timeout))
                raise StepFailed(f"{where} did not answer within {took}") from None
            except httpx.HTTPError as error:
                raise StepFailed(f"cannot reach {where}: {error or type(error).__name__}") from None
            latency = round((time.perf_counter() - start) * 1000, 1)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:BODY_MAX]
        if response.status_code not in spec.expect_status:
            raise StepFailed(
                f"{where} answered {response.status_code} to {spec.action}: {str(answer)[:300]}"
            )
        rows: list[list[Any]] = [["status", response.status_code], ["latency_ms", latency]]
        if isinstance(answer, dict):
            rows += [[str(k), jsonable(v)] for k, v in answer.items()]
        else:
            rows.append(["answer", jsonable(answer)])
        values = {"status": response.status_code, "latency_ms": latency}
        return Outcome(
            ["field", "value"],
            rows,
            values,
            f"{spec.action}: {target.url} answered {response.status_code} in {latency:g} ms",
        )
