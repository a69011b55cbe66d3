"""Silences from chat through the outbox: preview, one request per confirmation, retried, once.

The silencing port is scripted here (the real Alertmanager is in
``tests/integrations/test_alertmanager_silences.py``); the store, the outbox and the worker
are the real ones, on SQLite and on Postgres.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.clock import FixedClock
from bot.commands.parse import parse
from bot.commands.run import Dispatcher
from bot.config.settings import load_settings
from bot.core import Core
from bot.errors import ConfigError, UserError
from bot.incidents.card import load_card
from bot.incidents.silences import Matcher, SilencePlan, open_silences
from bot.intake.alerts.alertmanager import parse as parse_alertmanager
from bot.intake.fold import Endpoint
from bot.ports.silencing import Refused, SilenceRef, Unavailable
from bot.store.models import OutboxRow
from tests.intake.alerts.payloads import raw

BODY = "alertmanager/firing_capture_am0.27.0.wire.json"


class ScriptedSilencer:
    """The silencing port in memory; ``failures`` are raised by the next creates, in order."""

    def __init__(self) -> None:
        self.silences: dict[str, dict[str, object]] = {}
        self.failures: list[Exception] = []
        self.applied_despite_error = False
        self.creates = 0

    async def create(
        self,
        target: str,
        matchers: Sequence[Matcher],
        *,
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> SilenceRef:
        self.creates += 1
        sid = f"s{len(self.silences) + 1}"
        if self.failures:
            error = self.failures.pop(0)
            if isinstance(error, Unavailable) and error.uncertain and self.applied_despite_error:
                self.silences[sid] = {"comment": comment, "active": True}
            raise error
        self.silences[sid] = {
            "target": target,
            "matchers": [str(m) for m in matchers],
            "ends": ends,
            "created_by": created_by,
            "comment": comment,
            "active": True,
        }
        return SilenceRef(sid, target)

    async def find(self, target: str, marker: str) -> SilenceRef | None:
        for sid, silence in self.silences.items():
            if marker in str(silence["comment"]) and silence["active"]:
                return SilenceRef(sid, target)
        return None

    async def expire(self, target: str, silence_id: str) -> bool:
        silence = self.silences.get(silence_id)
        if silence is None or not silence["active"]:
            return False
        silence["active"] = False
        return True


@pytest.fixture
async def core(
    database_url: str, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Core]:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("T_AM_API", "am-api-token")
    config = tmp_path / "warroom.yaml"
    config.write_text(
        "server: {public_url: 'https://warroom.example'}\n"
        "alertmanager:\n  main: {url: 'http://am.example:9093', token_env: T_AM_API}\n"
    )
    made = Core.build(load_settings(config), clock=clock)
    yield made
    await made.close()


async def _incident(core: Core) -> str:
    delivery = parse_alertmanager(json.loads(raw(BODY)))
    result = await core.intake.receive(
        Endpoint("alertmanager", "alertmanager"), delivery, delivery_key="k1"
    )
    return result.incidents[0]


async def _silence_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        query = select(OutboxRow).where(col(OutboxRow.kind).startswith("silence_"))
        return list((await session.exec(query.order_by(col(OutboxRow.id)))).all())


async def test_the_preview_silences_the_groups_common_labels_with_the_incident_in_the_comment(
    core: Core,
) -> None:
    key = await _incident(core)
    plan = await core.silences.preview(key, "4h", [("instance", "=~", "web-.*")])
    assert plan.target == "main"
    assert [str(m) for m in plan.matchers] == [
        'alertname="ServiceHighErrorRate"',
        'service_name="frontend"',
        'severity="critical"',
        'signal="errors"',
        'instance=~"web-.*"',
    ]
    assert plan.comment.startswith(f"warroom {key}: ")
    assert plan.comment.endswith(f"https://warroom.example/incidents/{key}")
    # Naming a label replaces the group's matcher for it.
    narrower = await core.silences.preview(key, "1h", [("severity", "!=", "info")])
    assert 'severity!="info"' in [str(m) for m in narrower.matchers]
    assert 'severity="critical"' not in [str(m) for m in narrower.matchers]
    assert SilencePlan.from_token(plan.token()) == plan


async def test_a_confirmed_preview_is_one_silence_on_the_timeline_and_the_card(
    core: Core, clock: FixedClock
) -> None:
    key = await _incident(core)
    silencer = ScriptedSilencer()
    worker = core.delivery(silencer=silencer)
    plan = await core.silences.preview(key, "1h")
    assert await core.silences.request(plan, actor="U0ALICE") is True
    assert await core.silences.request(plan, actor="U0ALICE") is False  # a double click
    await worker.drain()
    ((sid, made),) = silencer.silences.items()
    assert made["created_by"] == "U0ALICE"
    assert f"warroom {key}" in str(made["comment"])
    assert plan.marker in str(made["comment"])
    assert made["ends"] == clock.now() + timedelta(hours=1)
    kinds = [e.kind for e in await core.incidents.timeline(key)]
    assert kinds.count("silence_requested") == 1
    assert kinds.count("silenced") == 1
    silenced = next(e for e in await core.incidents.timeline(key) if e.kind == "silenced")
    assert sid in silenced.text
    assert "until" in silenced.text
    incident = await core.incidents.get(key)
    async with core.db.transaction(read_only=True) as session:
        card = await load_card(session, incident, core.incidents.scheme, now=clock.now())
    assert [s.silence_id for s in card.silences] == [sid]
    assert card.silenceable
    # The channel is told (the local transcript here).
    rows = await _silence_rows(core)
    assert [r.status for r in rows] == ["done"]

    assert await core.silences.unsilence(key, actor="U0BOB") == [sid]
    with pytest.raises(UserError, match="being expired already"):
        await core.silences.unsilence(key, actor="U0BOB")
    await worker.drain()
    assert silencer.silences[sid]["active"] is False
    async with core.db.transaction(read_only=True) as session:
        assert await open_silences(session, incident.id or 0, now=clock.now()) == []
    assert "unsilenced" in [e.kind for e in await core.incidents.timeline(key)]


async def test_a_lost_answer_is_retried_with_backoff_and_never_creates_twice(
    core: Core, clock: FixedClock
) -> None:
    key = await _incident(core)
    silencer = ScriptedSilencer()
    silencer.failures = [
        Unavailable("connection refused", uncertain=False),
        Unavailable("read timeout", uncertain=True),
    ]
    silencer.applied_despite_error = True  # the second call went through, its answer was lost
    worker = core.delivery(silencer=silencer)
    await core.silences.request(await core.silences.preview(key, "1h"), actor="U0ALICE")
    await worker.drain()
    (row,) = await _silence_rows(core)
    assert row.status == "pending"
    assert row.attempts == 1
    clock.advance(timedelta(seconds=5))
    await worker.drain()
    clock.advance(timedelta(seconds=5))
    await worker.drain()
    (row,) = await _silence_rows(core)
    assert row.status == "done"
    assert row.result.get("recovered") is True
    assert len(silencer.silences) == 1  # found by its marker, not created again
    assert silencer.creates == 2
    assert [e.kind for e in await core.incidents.timeline(key)].count("silenced") == 1


async def test_a_refusal_goes_on_the_timeline_and_is_not_retried(core: Core) -> None:
    key = await _incident(core)
    silencer = ScriptedSilencer()
    silencer.failures = [Refused("HTTP 400: bad matcher")]
    await core.silences.request(await core.silences.preview(key, "1h"), actor="U0ALICE")
    await core.delivery(silencer=silencer).drain()
    (row,) = await _silence_rows(core)
    assert row.status == "failed"
    failed = [e for e in await core.incidents.timeline(key) if e.kind == "silence_failed"]
    assert len(failed) == 1
    assert "bad matcher" in failed[0].text


async def test_a_process_without_the_adapter_leaves_the_silence_to_the_server(core: Core) -> None:
    key = await _incident(core)
    await core.silences.request(await core.silences.preview(key, "1h"), actor="U0ALICE")
    await core.delivery().drain()  # e.g. a CLI command's delivery: no silencer
    (row,) = await _silence_rows(core)
    assert row.status == "pending"
    assert row.attempts == 0


async def test_resolving_expires_until_resolved_silences_and_reminds_of_the_others(
    core: Core,
) -> None:
    key = await _incident(core)
    silencer = ScriptedSilencer()
    worker = core.delivery(silencer=silencer)
    until = await core.silences.preview(key, "until-resolved")
    timed = await core.silences.preview(key, "4h")
    await core.silences.request(until, actor="U0ALICE")
    await core.silences.request(timed, actor="U0ALICE")
    await worker.drain()
    await core.incidents.resolve(key, actor="U0ALICE", summary="fixed")
    await worker.drain()
    active = [sid for sid, s in silencer.silences.items() if s["active"]]
    assert active == ["s2"]  # the 4h one holds; the until-resolved one was expired
    texts = [e.text for e in await core.incidents.timeline(key) if e.kind == "unsilenced"]
    assert len(texts) == 1
    assert "the incident was resolved" in texts[0]
    messages = [r.payload.get("text", "") for r in await _all_rows(core) if r.kind == "message"]
    assert any("silence(s) still hold" in t and "s2" in t for t in messages)
    with pytest.raises(UserError, match="resolved"):
        await core.silences.preview(key, "1h")


async def _all_rows(core: Core) -> list[OutboxRow]:
    async with core.db.transaction(read_only=True) as session:
        return list((await session.exec(select(OutboxRow))).all())


async def test_without_an_alertmanager_target_silencing_is_refused_clearly(
    database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    plain = Core.build(load_settings(), clock=clock)
    try:
        key = await _incident(plain)
        with pytest.raises(UserError, match="not configured: add an `alertmanager:` target"):
            await plain.silences.preview(key, "1h")
    finally:
        await plain.close()


def test_config_names_targets_and_maps_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "w.yaml"
    config.write_text(
        "alertmanager:\n  eu: {url: 'http://am-eu:9093'}\n  us: {url: 'http://am-us:9093'}\n"
        "webhooks:\n  am-eu: {source: alertmanager, alertmanager: eu}\n"
        "  am-us: {source: alertmanager, alertmanager: us}\n"
        "  other: {source: alertmanager}\n"
    )
    settings = load_settings(config)
    assert settings.silence_target("am-eu") == "eu"
    assert settings.silence_target("other") is None  # two targets: which one is not guessed
    config.write_text(
        "alertmanager:\n  eu: {url: 'http://am-eu:9093'}\n"
        "webhooks:\n  am: {source: alertmanager, alertmanager: us}\n"
    )
    with pytest.raises(ConfigError, match="no alertmanager target 'us'"):
        load_settings(config)
    config.write_text("alertmanager:\n  eu: {url: 'http://am-eu:9093', token: abc}\n")
    with pytest.raises(ConfigError, match=r"alertmanager\.eu\.token"):
        load_settings(config)
    config.write_text("alertmanager:\n  eu: {url: 'http://am-eu:9093', token_env: NOPE_UNSET}\n")
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    with pytest.raises(ConfigError, match="NOPE_UNSET is not set"):
        load_settings(config)


async def test_the_commands_preview_then_unsilence(core: Core) -> None:
    key = await _incident(core)
    dispatcher = Dispatcher(core)
    outcome = await dispatcher.run(
        parse(f"silence {key} until-resolved env!=dev"), actor="U0ALICE", channel=None
    )
    assert outcome.silence is not None
    assert outcome.silence.until_resolved
    assert 'env!="dev"' in [str(m) for m in outcome.silence.matchers]
    assert await _silence_rows(core) == []  # a preview writes nothing
    with pytest.raises(UserError, match="has no open silence"):
        await dispatcher.run(parse(f"unsilence {key}"), actor="U0ALICE", channel=None)
    await core.silences.request(outcome.silence, actor="U0ALICE")
    await core.delivery(silencer=ScriptedSilencer()).drain()
    done = await dispatcher.run(parse(f"unsilence {key} s1"), actor="U0BOB", channel=None)
    assert done.text == f"Expiring {key}'s silence(s) `s1`."
