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

Retries: a 5xx answer, a timeout or a lost connection is tried again with capped exponential
backoff (0.25 s, 0.5 s, 1 s, doubling up to 2 s; at most :data:`MAX_ATTEMPTS` attempts), all
within the step's ``timeout``, but only when a repeat is harmless: a diagnostic, or a
mitigation that carries its ``Idempotency-Key`` (a confirmed run always does). A mitigation
without the key is sent once, whatever happens: a lost answer may mean it was done.
"""

from __future__ import annotations

import asyncio
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

MAX_ATTEMPTS = 4
BACKOFF_FIRST_S = 0.25
BACKOFF_CAP_S = 2.0
#: An attempt needs at least this long left of the step's timeout to be worth making.
MIN_ATTEMPT_S = 0.1


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), capped."""
    return float(min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)))


class _Retryable(Exception):
    """An attempt that failed in a way a repeat may cure (5xx, timeout, connection)."""

    def __init__(self, failure: StepFailed) -> None:
        super().__init__(str(failure))
        self.failure = failure


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
        retry = not call.mitigation or "Idempotency-Key" in headers
        deadline = time.monotonic() + call.timeout
        attempt = 0
        async with httpx.AsyncClient(transport=self.transport, follow_redirects=False) as client:
            while True:
                attempt += 1
                left = deadline - time.monotonic()
                try:
                    response, answer, latency = await self._attempt(
                        client, target.url, body, headers, spec, where, left, call.timeout
                    )
                    break
                except _Retryable as failed:
                    wait = backoff(attempt)
                    out_of_time = deadline - time.monotonic() - wait < MIN_ATTEMPT_S
                    if not retry or attempt >= MAX_ATTEMPTS or out_of_time:
                        if attempt > 1:
                            raise StepFailed(f"{failed} (after {attempt} attempts)") from None
                        raise failed.failure from None
                    await asyncio.sleep(wait)
        rows: list[list[Any]] = [["status", response.status_code], ["latency_ms", latency]]
        if isinstance(answer, dict):
            rows += [[str(k), jsonable(v)] for k, v in answer.items()]
        else:
            rows.append(["answer", jsonable(answer)])
        if attempt > 1:
            rows.insert(2, ["attempts", attempt])
        values = {"status": response.status_code, "latency_ms": latency, "attempts": attempt}
        tries = f" (attempt {attempt})" if attempt > 1 else ""
        return Outcome(
            ["field", "value"],
            rows,
            values,
            f"{spec.action}: {target.url} answered {response.status_code} in {latency:g} ms{tries}",
        )

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        spec: WebhookSpec,
        where: str,
        left: float,
        step_timeout_s: float,
    ) -> tuple[httpx.Response, Any, float]:
        """One POST with what is left of the step's timeout; a retryable failure is marked."""
        start = time.perf_counter()
        try:
            response = await client.post(
                url, json=body, headers=headers, timeout=httpx.Timeout(max(left, MIN_ATTEMPT_S))
            )
        except httpx.TimeoutException:
            took = format_duration(timedelta(seconds=step_timeout_s))
            raise _Retryable(StepFailed(f"{where} did not answer within {took}")) from None
        except httpx.HTTPError as error:
            problem = StepFailed(f"cannot reach {where}: {error or type(error).__name__}")
            if isinstance(error, httpx.TransportError):
                raise _Retryable(problem) from None
            raise problem from None
        latency = round((time.perf_counter() - start) * 1000, 1)
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:BODY_MAX]
        if response.status_code not in spec.expect_status:
            failure = StepFailed(
                f"{where} answered {response.status_code} to {spec.action}: {str(answer)[:300]}"
            )
            if response.status_code >= 500:
                raise _Retryable(failure)
            raise failure
        return response, answer, latency
