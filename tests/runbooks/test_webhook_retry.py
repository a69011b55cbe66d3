"""Webhook steps retry 5xx answers and timeouts, against a real local server that fails first.

Only when a repeat is harmless: a mitigation carries its Idempotency-Key (every confirmed run
does) and the endpoint sees the same key each time; without the key it is sent once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runbooks import Runbooks, load_runbooks
from bot.runbooks.grading import Grade
from bot.runbooks.kinds import StepCall, StepFailed
from bot.runbooks.targets import WebhookTarget
from bot.runbooks.webhook import MAX_ATTEMPTS, WebhookKind, WebhookSpec
from bot.store.models import Incident
from tests.loopback import Loopback, QuietHandler

from .conftest import COMMANDER, SQLITE_STORE, write_runbook


class Flaky:
    """A loopback endpoint: the first ``failures`` POSTs answer 503 (or hang), then 200."""

    def __init__(self) -> None:
        self.failures = 0
        self.hang_s = 0.0
        self.seen: list[dict[str, Any]] = []
        self.url = ""

    def handler(self) -> type[QuietHandler]:
        flaky = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                flaky.seen.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                failing = len(flaky.seen) <= flaky.failures
                if failing and flaky.hang_s:
                    time.sleep(flaky.hang_s)
                status, answer = (503, {"error": "busy"}) if failing else (200, {"ok": True})
                with contextlib.suppress(OSError):  # the client gave up on this attempt
                    self.send_json(status, answer)

        return Handler


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    found = Flaky()
    with Loopback(found.handler()) as server:
        found.url = f"{server.url}/deploy"
        yield found


BOOK = """\
id: deployer
title: Deployer
diagnostics: []
mitigations:
  - id: scale
    title: Scale out
    kind: webhook
    target: flaky
    action: scale
    timeout: {timeout}
    allowed: {{roles: [commander]}}
"""


def _engine(engine: Runbooks, flaky: Flaky, tmp_path: Path, timeout: str = "10s") -> Runbooks:
    targets = engine.settings.targets
    hooks = {**targets.webhooks, "flaky": WebhookTarget(url=flaky.url)}
    engine.settings = engine.settings.model_copy(
        update={"targets": targets.model_copy(update={"webhooks": hooks})}
    )
    engine.executor.settings = engine.settings
    for book in load_runbooks([write_runbook(tmp_path, BOOK.format(timeout=timeout))]):
        engine._runbooks[book.id] = book
    return engine


@SQLITE_STORE
async def test_a_confirmed_mitigation_is_retried_with_the_same_idempotency_key(
    engine: Runbooks, incident: Incident, flaky: Flaky, tmp_path: Path
) -> None:
    flaky.failures = 2
    runbooks = _engine(engine, flaky, tmp_path)
    pending = await runbooks.request(incident.key, "deployer", "scale", actor=COMMANDER)
    result = await runbooks.confirm(pending.run_id, actor=COMMANDER)

    assert result.error is None
    assert result.grade is not Grade.ERROR
    assert result.values["attempts"] == 3
    assert result.summary.endswith("(attempt 3)")
    keys = {hook["headers"]["Idempotency-Key"] for hook in flaky.seen}
    assert keys == {f"warroom-run-{pending.run_id}"}
    assert len(flaky.seen) == 3
    gaps = [b["at"] - a["at"] for a, b in zip(flaky.seen, flaky.seen[1:], strict=False)]
    assert gaps[0] >= 0.2  # exponential backoff: 0.25 s…
    assert gaps[1] >= 0.45  # …then 0.5 s


@SQLITE_STORE
async def test_retries_stop_within_the_steps_timeout(
    engine: Runbooks, incident: Incident, flaky: Flaky, tmp_path: Path
) -> None:
    flaky.failures = 100
    runbooks = _engine(engine, flaky, tmp_path, timeout="1s")
    pending = await runbooks.request(incident.key, "deployer", "scale", actor=COMMANDER)
    started = time.monotonic()
    result = await runbooks.confirm(pending.run_id, actor=COMMANDER)
    took = time.monotonic() - started

    assert took < 1.5
    assert result.grade is Grade.ERROR
    assert result.error is not None
    assert result.error.startswith("webhook 'flaky' answered 503 to scale")
    assert f"(after {len(flaky.seen)} attempts)" in result.error
    assert 2 <= len(flaky.seen) < MAX_ATTEMPTS  # 0.25 s + 0.5 s fit in 1 s; 1 s more does not


@SQLITE_STORE
async def test_a_timed_out_attempt_is_tried_again(
    engine: Runbooks, incident: Incident, flaky: Flaky, tmp_path: Path
) -> None:
    flaky.failures, flaky.hang_s = 1, 1.5
    runbooks = _engine(engine, flaky, tmp_path, timeout="3s")
    pending = await runbooks.request(incident.key, "deployer", "scale", actor=COMMANDER)
    result = await runbooks.confirm(pending.run_id, actor=COMMANDER)
    # The first attempt hung past what was left of the 3 s; the second answered in time.
    assert result.error is None, result.error
    assert len(flaky.seen) == 2


async def test_a_mitigation_without_an_idempotency_key_is_sent_once(flaky: Flaky) -> None:
    flaky.failures = 1
    call = StepCall(
        runbook="deployer",
        step=_Step(),
        spec=WebhookSpec(action="scale"),
        target_name="flaky",
        target=WebhookTarget(url=flaky.url),
        params={},
        mitigation=True,
        timeout=5.0,
        run_id=None,  # no run id, so no Idempotency-Key
    )
    with pytest.raises(StepFailed, match=r"answered 503 to scale: \{'error': 'busy'\}$"):
        await WebhookKind().run(call)
    assert len(flaky.seen) == 1
    assert "Idempotency-Key" not in flaky.seen[0]["headers"]


class _Step:
    id = "scale"

    @property
    def params(self) -> dict[str, Any]:
        return {}
