"""``GET /metrics``: a storm through the real app, scraped and checked against the database.

The app runs in-process with its real webhooks, on SQLite and on Postgres, connected to the fake
Slack. Slack answers every ``conversations.create`` with 429 and an hour's ``Retry-After``, so
each incident's channel (and everything behind it in its lane) stays in the outbox: the backlog
is stable while the test compares it, and the 429s must show in the Slack call counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session, col, create_engine, func, select
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.core import Core
from bot.store.db import sync_url
from bot.store.models import Alert, Incident, OutboxRow, StepRun, WebhookDelivery
from handlers.app import create_app
from handlers.slack.chat import SlackChat
from handlers.slack.limits import RateGate
from tests.fakes.slack_api import FakeSlack, running_fake_slack_in_thread
from tests.fakes.slack_state import BOT_TOKEN
from tests.waiting import wait_for
from tests.web.forms import login_as

TOKEN = "metrics-reader-token"
JSON = {"content-type": "application/json"}
#: group → (sender's severity word, the level it is classified at)
GROUPS = {
    "db": ("critical", "P1"),
    "api": ("critical", "P1"),
    "cache": ("warning", "P3"),
    "queue": ("warning", "P3"),
    "batch": ("info", "P4"),
}
SINGLES = 12  # bodies of one alert per group
FIVES = 2  # bodies of five alerts per group
#: How long before the storm its alerts started: taken when the test starts, not when the module
#: is collected (a long test run must not stretch the time to acknowledge).
STARTED_AGO = timedelta(minutes=20)


class NoPacing(RateGate):
    """The real chat adapter without its waiting: a 429 goes straight back to the worker."""

    async def wait(self, method: str, channel: str | None = None) -> None:
        return None

    def back_off(self, method: str, channel: str | None, seconds: float) -> None:
        return None


def am_body(
    group: str, numbers: range, started: datetime | None = None, status: str = "firing"
) -> dict:
    word, _ = GROUPS.get(group, ("warning", "P3"))
    alerts = [
        {
            "status": status,
            "labels": {"alertname": f"{group}Down", "instance": f"host-{n}", "severity": word},
            "annotations": {"summary": f"{group} is down"},
            "startsAt": (started or datetime.now(UTC) - STARTED_AGO).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph",
            "fingerprint": f"{group}-{n:06d}",
        }
        for n in numbers
    ]
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}Down"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "warroom",
        "groupLabels": {"alertname": f"{group}Down"},
        "commonLabels": {"alertname": f"{group}Down"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


@dataclass
class App:
    client: TestClient
    url: str
    fake: FakeSlack | None = None

    def post(self, body: dict | bytes, name: str = "alertmanager") -> int:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/webhooks/{name}", content=data, headers=JSON).status_code

    def scrape(self, token: str | None = TOKEN) -> dict[str, dict[tuple, float]]:
        """The parsed metrics: name of each sample → its labels (sorted pairs) → its value."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = self.client.get("/metrics", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        found: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                found.setdefault(sample.name, {})[labels] = sample.value
        return found

    def query(self, statement):  # type: ignore[no-untyped-def]
        engine = create_engine(sync_url(self.url))
        with Session(engine) as session:
            rows = list(session.exec(statement).all())
        engine.dispose()
        return rows


def clean_environment(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", database_url)


@pytest.fixture
def app(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    with running_fake_slack_in_thread(rate_limit_scale=60.0) as fake:
        clean_environment(monkeypatch, database_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", "metrics-test-signing-secret")
        monkeypatch.setenv("WARROOM_SLACK__API_URL", fake.base_url)
        monkeypatch.setenv("WARROOM_WEB__TOKEN", TOKEN)
        fake.fail_next("conversations.create", 1000, status=429, retry_after=3600)

        def chat(core: Core) -> SlackChat:
            return SlackChat(AsyncWebClient(token=BOT_TOKEN, base_url=fake.base_url), NoPacing())

        with TestClient(create_app(load_settings(), chat_factory=chat)) as client:
            yield App(client, database_url, fake)


def storm(app: App, started: datetime) -> list[int]:
    bodies: list[dict | bytes] = []
    for n in range(SINGLES):
        bodies += [am_body(group, range(n, n + 1), started) for group in GROUPS]
    for k in range(FIVES):
        start = 1000 + 5 * k
        bodies += [am_body(group, range(start, start + 5), started) for group in GROUPS]
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(app.post, bodies))


def test_a_storm_scraped_matches_the_database(app: App) -> None:
    started = datetime.now(UTC) - STARTED_AGO
    codes = storm(app, started)
    # 200 once folded, 202 once journaled while the fold is behind: both stored.
    assert set(codes) <= {200, 202}, codes
    retry = json.dumps(
        am_body("db", range(0, 1), started)
    ).encode()  # the first body, byte for byte
    assert app.post(retry) in (200, 202)  # stored once; counted as a duplicate
    ignored = am_body("nothing-open", range(1), started, status="resolved")
    assert app.post(ignored) in (200, 202)  # ignored
    assert app.post(b"{not json") == 400
    assert app.post(am_body("db", range(1)), name="no-such-endpoint") == 404

    incidents = len(GROUPS)
    sent = incidents * (SINGLES + 5 * FIVES)
    wait_for(
        "the storm folded",
        lambda: (
            app.query(select(func.count()).select_from(Alert))[0] == sent
            and app.query(select(func.count()).select_from(WebhookDelivery))[0] == len(codes) + 1
        ),
    )
    fake = app.fake
    assert fake is not None
    wait_for(
        "every incident's channel tried once",
        lambda: len(fake.calls_to("conversations.create")) == incidents,
    )
    # People acknowledge two incidents and resolve one (as Slack or the CLI would).
    keys = dict(app.query(select(Incident.title, Incident.key)))
    acked_key, resolved_key = keys["db is down"], keys["api is down"]

    async def people() -> None:
        core = Core.build(load_settings())
        try:
            await core.incidents.acknowledge(acked_key, actor="U-alice")
            await core.incidents.acknowledge(resolved_key, actor="U-bob")
            await core.incidents.resolve(resolved_key, actor="U-alice", summary="restarted")
        finally:
            await core.close()

    app.client.portal.call(people)  # type: ignore[union-attr]
    engine = create_engine(sync_url(app.url))
    with Session(engine) as session:
        incident_id = session.exec(select(Incident.id).where(Incident.key == acked_key)).one()
        for kind, grade in [("diagnostic", "green"), ("diagnostic", "green"), ("mitigation", None)]:
            session.add(
                StepRun(
                    incident_id=incident_id,
                    runbook="db-connection-exhaustion",
                    step="idle_connections",
                    kind=kind,
                    step_kind="postgres",
                    target="main",
                    status="done" if grade else "refused",
                    requested_by="U-alice",
                    requested_at=datetime.now(UTC),
                    grade=grade,
                )
            )
        session.commit()
    engine.dispose()

    metrics = app.scrape()

    def value(name: str, **labels: str) -> float:
        return metrics.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    stored = app.query(select(func.count()).select_from(Alert))[0]
    assert stored == sent
    assert value("warroom_alerts_received_total", source="alertmanager", result="accepted") == (
        stored
    )
    assert value("warroom_alerts_received_total", source="alertmanager", result="duplicate") == 1
    assert value("warroom_alerts_received_total", source="alertmanager", result="ignored") == 1

    accepted_bodies = incidents * (SINGLES + FIVES) + 1  # and the ignored resolve
    assert value("warroom_intake_batch_size_count", source="alertmanager") == accepted_bodies
    assert value("warroom_intake_batch_size_sum", source="alertmanager") == sent + 1
    assert value("warroom_intake_batch_size_bucket", source="alertmanager", le="1.0") == (
        accepted_bodies - incidents * FIVES
    )
    requests = sum(
        value("warroom_webhook_request_seconds_count", source="alertmanager", code=code)
        for code in ("200", "202")
    )
    assert requests == len(codes) + 2
    assert value("warroom_webhook_request_seconds_count", source="alertmanager", code="400") == 1
    assert value("warroom_webhook_request_seconds_count", source="unknown", code="404") == 1

    open_rows = app.query(
        select(Incident.severity, func.count())
        .where(col(Incident.status) != "resolved")
        .group_by(col(Incident.severity))
    )
    open_by_severity = dict(open_rows)
    assert open_by_severity == {"P1": 1, "P3": 2, "P4": 1}  # api's (P1) is resolved
    for severity in ("P1", "P2", "P3", "P4"):
        assert value("warroom_incidents_open", severity=severity) == open_by_severity.get(
            severity, 0
        )

    pending = app.query(select(func.count()).where(col(OutboxRow.status) == "pending"))[0]
    assert pending >= incidents  # every channel is still to be opened
    assert value("warroom_outbox_pending") == pending
    assert value("warroom_outbox_failed") == 0
    assert 0 < value("warroom_outbox_oldest_seconds") < 600
    assert value("warroom_database_up") == 1

    # Twenty minutes from the alerts' start to the acknowledgement and to the resolution.
    ack = "warroom_incident_time_to_ack_seconds"
    assert value(f"{ack}_count", severity="P1") == 2
    assert value(f"{ack}_bucket", severity="P1", le="900.0") == 0
    assert value(f"{ack}_bucket", severity="P1", le="1800.0") == 2
    assert 2 * 1200 <= value(f"{ack}_sum", severity="P1") < 2 * 1800
    resolve = "warroom_incident_time_to_resolve_seconds"
    assert value(f"{resolve}_count", severity="P1") == 1
    assert value(f"{resolve}_bucket", severity="P1", le="1800.0") == 1
    assert value(f"{resolve}_count", severity="P3") == 0

    assert value("warroom_step_runs_total", kind="diagnostic", grade="green") == 2
    assert value("warroom_step_runs_total", kind="mitigation", grade="none") == 1

    creates = fake.calls_to("conversations.create")
    assert [c.status for c in creates] == [429] * incidents
    assert value("warroom_slack_calls_total", method="conversations.create", status="429") == (
        incidents
    )
    assert value("warroom_slack_calls_total", method="auth.test", status="ok") == len(
        fake.calls_to("auth.test")
    )
    assert value("warroom_slack_calls_total", method="conversations.create", status="ok") == 0


def test_metrics_need_the_token_when_one_is_set(app: App) -> None:
    assert app.client.get("/metrics").status_code == 401
    wrong = app.client.get("/metrics", headers={"authorization": "Bearer guess"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert "warroom_" not in wrong.text
    assert app.client.get("/metrics", headers={"authorization": f"Basic {TOKEN}"}).status_code == (
        401
    )
    right = app.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert "warroom_outbox_pending" in right.text
    # A manager logged in to the pages may read them too.
    assert login_as(app.client, TOKEN).status_code == 200
    assert app.client.get("/metrics").status_code == 200


def test_without_a_token_metrics_are_open_and_each_app_counts_its_own(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch, database_url)
    first = App(TestClient(create_app(load_settings())), database_url)
    second = App(TestClient(create_app(load_settings())), database_url)
    with first.client, second.client:
        assert first.post(am_body("db", range(3))) in (200, 202)
        assert second.post(am_body("cache", range(2))) in (200, 202)
        wait_for(
            "both folded",
            lambda: first.query(select(func.count()).select_from(Alert))[0] == 5,
        )
        one, two = first.scrape(token=None), second.scrape(token=None)
    key = (("result", "accepted"), ("source", "alertmanager"))
    # Counted by the app that folded them (replicas fold one shared journal), each in its
    # own registry: together, every alert once.
    folded = [m.get("warroom_alerts_received_total", {}).get(key, 0.0) for m in (one, two)]
    assert sum(folded) == 5, folded
    # What is read from the database is the same for both: true across replicas.
    for figures in (one, two):
        assert figures["warroom_incidents_open"][(("severity", "P1"),)] == 1
        assert figures["warroom_incidents_open"][(("severity", "P3"),)] == 1
    assert "warroom_slack_calls_total" not in one  # local mode: no Slack calls


def test_with_the_database_down_metrics_still_answer_and_say_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clean_environment(monkeypatch, "postgresql+psycopg://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("WARROOM_DATABASE__AUTO_MIGRATE", "false")
    down = App(TestClient(create_app(load_settings())), "")
    with down.client:
        assert down.post(am_body("db", range(4))) == 503  # the sender will retry
        metrics = down.scrape(token=None)
    assert metrics["warroom_database_up"] == {(): 0.0}
    assert "warroom_outbox_pending" not in metrics  # not guessed when it cannot be read
    refused = (("result", "refused"), ("source", "alertmanager"))
    assert metrics["warroom_alerts_received_total"][refused] == 4
    answered = (("code", "503"), ("source", "alertmanager"))
    assert metrics["warroom_webhook_request_seconds_count"][answered] == 1


def test_a_row_scheduled_for_later_is_not_counted_as_late(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.delivery.outbox import enqueue
    from bot.store.db import Database

    clean_environment(monkeypatch, database_url)
    app = App(TestClient(create_app(load_settings())), database_url)
    with app.client:
        base = app.scrape(token=None)
        assert base["warroom_outbox_oldest_seconds"][()] == 0

        async def schedule() -> None:
            db = Database(database_url)
            try:
                async with db.transaction() as session:
                    now = datetime.now(UTC)
                    await enqueue(
                        session,
                        lane="later",
                        kind="message",
                        payload={"text": "in an hour"},
                        now=now - timedelta(minutes=30),  # written half an hour ago
                        not_before=now + timedelta(hours=1),  # due in an hour
                    )
            finally:
                await db.dispose()

        import asyncio

        asyncio.run(schedule())
        figures = app.scrape(token=None)
    assert figures["warroom_outbox_pending"][()] == 1
    assert figures["warroom_outbox_oldest_seconds"][()] == 0  # not due yet: not late
