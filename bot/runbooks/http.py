"""The ``http`` kind (httpx): a request under a target's base URL, graded by status and time.

::

    kind: http
    target: app                  # runbooks.targets.http.app.base_url (+ token_env → Bearer)
    method: GET                  # diagnostics: GET or HEAD; mitigations may also POST, PUT…
    path: /metrics/json          # relative to the base URL; {name} fills a whole segment
    query: {window: "{window}"}  # values may be {name}
    expect_status: [200]         # another status grades the result red
    json_fields:                 # values for thresholds, by dotted path into the JSON answer
      error_rate_pct: error_rate
      cache_hit_rate_pct: cache.hit_rate
    thresholds:
      - {metric: latency_ms, green: "< 500", red: "> 1000"}

The result's values are ``status``, ``latency_ms`` and each JSON field. Redirects are not
followed (they could leave the target); a parameter is percent-encoded into one path
segment, so it cannot change the path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, field_validator

from bot.runbooks.grading import Grade, Verdict
from bot.runbooks.kinds import Outcome, Problem, StepCall, StepFailed, jsonable
from bot.runbooks.params import Param, ParamValue, format_duration
from bot.runbooks.targets import HttpTarget, TargetType, TargetUnavailable

_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_PATH = re.compile(r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@%/-]|\{[a-z][a-z0-9_]*\})*")
READ_METHODS = ("GET", "HEAD")
BODY_MAX = 2000


class HttpSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = "/"
    query: dict[str, str] = {}
    body: dict[str, Any] | None = None
    expect_status: list[int] = [200]
    json_fields: dict[str, str] = {}

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PATH.fullmatch(value) or value.startswith("//") or "/../" in f"{value}/":
            raise ValueError(
                "path must start with / and stay under the target's base URL "
                "(no scheme, no //, no ..)"
            )
        return value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        if not value or any(not 100 <= s <= 599 for s in value):
            raise ValueError("expect_status lists HTTP statuses (100–599)")
        return value


def field_at(data: Any, path: str) -> Any:
    """``cache.hit_rate`` → data["cache"]["hit_rate"]; ``items.0.id`` indexes lists."""
    for part in path.split("."):
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _fill(text: str, params: Mapping[str, ParamValue], *, segment: bool) -> str:
    def one(match: re.Match[str]) -> str:
        value = params[match.group(1)]
        shown = str(Param.jsonable(value))
        if segment:
            if shown in (".", ".."):
                raise StepFailed(f"{match.group(1)}: {shown!r} is not a path segment")
            return quote(shown, safe="")
        return shown

    return _SLOT.sub(one, text)


def fill_json(value: Any, params: Mapping[str, ParamValue]) -> Any:
    """``value`` with every string that is exactly ``{name}`` replaced by that parameter."""
    if isinstance(value, str):
        whole = _SLOT.fullmatch(value)
        return Param.jsonable(params[whole.group(1)]) if whole else value
    if isinstance(value, list):
        return [fill_json(v, params) for v in value]
    if isinstance(value, dict):
        return {k: fill_json(v, params) for k, v in value.items()}
    return value


def slots(spec: HttpSpec) -> set[str]:
    names = set(_SLOT.findall(spec.path))
    for value in spec.query.values():
        names |= set(_SLOT.findall(value))
    names |= set(_SLOT.findall(json.dumps(spec.body or {})))
    return names


class HttpKind:
    """Registered as ``http``; targets come from ``runbooks.targets.http``."""

    name = "http"
    target_type: TargetType = "http"
    spec_model = HttpSpec
    mitigation_only = False

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.transport = transport

    def check(
        self, spec: HttpSpec, params: Mapping[str, Param], *, mitigation: bool
    ) -> list[Problem]:
        out = []
        if not mitigation and spec.method not in READ_METHODS:
            out.append(
                Problem(
                    "method",
                    f"{spec.method} may change things: diagnostics use "
                    "GET or HEAD; declare it as a mitigation",
                )
            )
        if spec.body is not None and spec.method in READ_METHODS:
            out.append(Problem("body", f"a {spec.method} request has no body"))
        out += [
            Problem("path", f"{{{name}}} names no declared parameter")
            for name in sorted(slots(spec))
            if name not in params
        ]
        return out

    async def run(self, call: StepCall) -> Outcome:
        spec: HttpSpec = call.spec
        target = call.target
        assert isinstance(target, HttpTarget)
        try:
            token = target.token()
        except TargetUnavailable as error:
            raise StepFailed(str(error)) from None
        headers = {"User-Agent": "warroom-runbook"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = _fill(spec.path, call.params, segment=True)
        query = {k: _fill(v, call.params, segment=False) for k, v in spec.query.items()}
        body = fill_json(spec.body, call.params) if spec.body is not None else None
        where = f"http target {call.target_name!r}"
        async with httpx.AsyncClient(
            base_url=target.base_url,
            transport=self.transport,
            timeout=httpx.Timeout(call.timeout),
            follow_redirects=False,
        ) as client:
            start = time.perf_counter()
            try:
                response = await client.request(
                    spec.method, path, params=query, json=body, headers=headers
                )
            except httpx.TimeoutException:
                took = format_duration(timedelta(seconds=call.timeout))
                raise StepFailed(f"{where} did not answer within {took}") from None
            except httpx.HTTPError as error:
                raise StepFailed(f"cannot reach {where}: {error or type(error).__name__}") from None
            latency = round((time.perf_counter() - start) * 1000, 1)
        return outcome(spec, response, latency)


def outcome(spec: HttpSpec, response: httpx.Response, latency_ms: float) -> Outcome:
    """Status, latency and JSON fields of ``response`` as values, rows and a verdict."""
    request = response.request
    values: dict[str, Any] = {"status": response.status_code, "latency_ms": latency_ms}
    verdict = None
    if response.status_code not in spec.expect_status:
        expected = ", ".join(str(s) for s in spec.expect_status)
        verdict = Verdict(Grade.RED, f"status {response.status_code} (expected {expected})")
    if spec.json_fields:
        try:
            data = response.json()
        except ValueError:
            data = None
            if verdict is None:
                verdict = Verdict(Grade.RED, "the answer is not JSON")
        for name, path in spec.json_fields.items():
            values[name] = jsonable(field_at(data, path))
    rows = [[k, v] for k, v in values.items()]
    if not spec.json_fields:
        rows.append(["body", response.text[:BODY_MAX]])
    sent = request.url.raw_path.decode("ascii", "replace")
    summary = f"{request.method} {sent} → {response.status_code} in {latency_ms:g} ms"
    return Outcome(["field", "value"], rows, values, summary, verdict)
