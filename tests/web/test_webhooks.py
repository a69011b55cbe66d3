"""`POST /webhooks/<name>` through the real ASGI app, on SQLite and Postgres."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlmodel import Session, col, create_engine, func, select
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.store.db import sync_url
from bot.store.models import Alert, Incident, TimelineEvent, WebhookDelivery
from handlers.app import create_app
from tests.intake.alerts.payloads import load, raw
from tests.waiting import wait_for

JSON = {"content-type": "application/json"}


class Server:
    def __init__(self, client: TestClient, url: str) -> None:
        self.client = client
        self.url = url

    def post(self, name: str, body: bytes | dict | list, **headers: str):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/webhooks/{name}", content=data, headers={**JSON, **headers})

    def count(self, model: type) -> int:
        engine = create_engine(sync_url(self.url))
        with Session(engine) as session:
            value = session.exec(select(func.count()).select_from(model)).one()
        engine.dispose()
        return value

    def rows(self, model: type) -> list:
        engine = create_engine(sync_url(self.url))
        with Session(engine) as session:
            found = list(session.exec(select(model).order_by(col(model.id))).all())
        engine.dispose()
        return found

    def stored_nothing(self) -> bool:
        return all(self.count(m) == 0 for m in (Incident, Alert, TimelineEvent, WebhookDelivery))


def make_server(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str = ""
) -> Iterator[Server]:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", url)
    path = None
    if config:
        path = tmp_path / "warroom.yaml"
        path.write_text(config)
    with TestClient(create_app(load_settings(path))) as client:
        yield Server(client, url)


@pytest.fixture
def server(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from make_server(database_url, tmp_path, monkeypatch)


def test_alertmanager_firing_then_resolved(server: Server) -> None:
    firing = server.post("alertmanager", raw("alertmanager/firing_capture_am0.27.0.wire.json"))
    assert firing.status_code == 200
    assert firing.json() == {
        "status": "accepted",
        "alerts": 1,
        "ignored": 0,
        "incidents": ["INC-0001"],
        "opened": ["INC-0001"],
    }
    again = server.post("alertmanager", raw("alertmanager/firing_capture_am0.27.0.wire.json"))
    assert again.json()["status"] == "duplicate"
    resolved = server.post("alertmanager", raw("alertmanager/resolved_capture_am0.27.0.wire.json"))
    assert resolved.json()["incidents"] == ["INC-0001"]

    (incident,) = server.rows(Incident)
    assert incident.title == "frontend error rate above 5%"
    assert incident.status == "monitoring"
    assert (incident.severity, incident.severity_source) == ("P1", "rule")
    (alert,) = server.rows(Alert)
    assert alert.fingerprint == "0eeee852e85422ff"
    assert alert.status == "resolved"
    assert alert.count == 2
    assert alert.links["generator"].startswith("http")
    assert server.count(WebhookDelivery) == 2


def test_grafana_two_alerts_one_incident(server: Server) -> None:
    answer = server.post("grafana", load("grafana/unified_firing_two_alerts_doc_example.json"))
    assert answer.status_code == 200
    assert answer.json()["alerts"] == 2
    assert server.count(Incident) == 1
    alerts = server.rows(Alert)
    assert len(alerts) == 2
    assert all(a.values for a in alerts)
    assert all(a.links["silence"].startswith("https://play.grafana.org/") for a in alerts)


def test_pagerduty_trigger_ack_resolve(server: Server) -> None:
    """One PagerDuty incident's life: its triggered body, then the same incident acked, resolved."""
    triggered = load("pagerduty/incident_triggered.json")
    assert server.post("pagerduty", triggered).json()["opened"] == ["INC-0001"]
    for n, event_type in enumerate(("incident.acknowledged", "incident.resolved")):
        body = json.loads(json.dumps(triggered))
        body["event"]["event_type"] = event_type
        body["event"]["id"] = f"next-{n}"
        answer = server.post("pagerduty", body)
        assert answer.json()["incidents"] == ["INC-0001"], answer.text
    (incident,) = server.rows(Incident)
    assert incident.title == "Test Incident 3"
    assert incident.acknowledged_by == "pagerduty"
    assert incident.status == "monitoring"
    (alert,) = server.rows(Alert)
    assert alert.links["pagerduty"] == "https://pig208.pagerduty.com/incidents/PFQZPSY"
    assert alert.status == "resolved"
    # Another PagerDuty incident is another of ours; a resolve for an unknown one is ignored.
    assert server.post("pagerduty", load("pagerduty/incident_acknowledged.json")).json()[
        "opened"
    ] == ["INC-0002"]
    late = server.post("pagerduty", load("pagerduty/incident_resolved.json")).json()
    assert (late["ignored"], late["incidents"]) == (1, [])


def test_events_and_datadog(server: Server) -> None:
    trigger = "pagerduty_events_v2/pagerduty_events_api_v2_trigger_doc_example.json"
    assert server.post("events", load(trigger)).status_code == 200
    dd = server.post("datadog", load("datadog/triggered_custom_payload_capture_2015.json"))
    assert dd.status_code == 200
    recovered = load("datadog/recovered_custom_payload_capture_2015.json")
    assert server.post("datadog", recovered).json()["incidents"] == ["INC-0002"]
    assert server.count(Incident) == 2


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "needle"),
    [
        ("nope", b"{}", {}, 404, "no such webhook endpoint"),
        ("alertmanager", b"{", {}, 400, "malformed JSON"),
        ("alertmanager", b'{"alerts": 5}', {}, 400, "alerts: expected an array"),
        ("alertmanager", b"{}", {"content-type": "text/plain"}, 415, "application/json"),
        ("pagerduty", b'{"event": {}}', {}, 400, "event"),
        ("alertmanager", b"\xff\xfe", {}, 400, "malformed JSON"),
        ("alertmanager", b"x" * (1024 * 1024 + 1), {}, 413, "body over 1048576 bytes"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    server: Server, name: str, body: bytes, headers: dict, status: int, needle: str
) -> None:
    answer = server.post(name, body, **headers)
    assert answer.status_code == status
    assert needle in answer.json()["error"]
    assert server.stored_nothing()


AUTH_CONFIG = """
webhooks:
  am:
    source: alertmanager
    token_env: T_AM_TOKEN
  dd:
    source: datadog
    basic_user: datadog
    basic_password_env: T_DD_PASSWORD
  graf:
    source: grafana
    signing_secret_env: T_GRAFANA_SECRET
    timestamp_header: X-Grafana-Alerting-Signature-Timestamp
  graf-slack:
    source: grafana
    signing_secret_env: T_GRAFANA_SECRET
    timestamp_header: X-Grafana-Alerting-Signature-Timestamp
    replay_window: 1h
  pd:
    source: pagerduty
    signing_secret_env: T_PD_SECRETS
"""


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path):
    import shutil

    db = tmp_path / "guarded.db"
    shutil.copy(sqlite_template, db)
    signature = (raw("pagerduty/signed_priority_updated.signature.txt")).decode()
    secret = next(
        line.split("=", 1)[1].strip()
        for line in signature.splitlines()
        if line.startswith("secret=")
    )
    monkeypatch.setenv("T_AM_TOKEN", "am-token")
    monkeypatch.setenv("T_DD_PASSWORD", "dd-pass")
    monkeypatch.setenv("T_GRAFANA_SECRET", "old-secret,grafana-secret")
    monkeypatch.setenv("T_PD_SECRETS", f"rotated-out,{secret}")
    yield from make_server(f"sqlite:///{db}", tmp_path, monkeypatch, AUTH_CONFIG)


def test_bearer_and_basic_auth(guarded: Server) -> None:
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    assert guarded.post("am", body).status_code == 401
    assert guarded.post("am", body, authorization="Bearer wrong").status_code == 401
    assert guarded.stored_nothing()
    assert guarded.post("am", body, authorization="Bearer am-token").status_code == 200
    dd = raw("datadog/triggered_custom_payload_capture_2015.json")
    good = "Basic " + base64.b64encode(b"datadog:dd-pass").decode()
    bad = "Basic " + base64.b64encode(b"datadog:nope").decode()
    assert guarded.post("dd", dd, authorization=bad).status_code == 401
    assert guarded.post("dd", dd, authorization="Basic !!!").status_code == 401
    assert guarded.post("dd", dd, authorization=good).status_code == 200
    assert guarded.post("dd", dd, authorization=good).json()["status"] == "duplicate"


@pytest.mark.parametrize(
    ("authorization", "needle"),
    [
        (None, "missing credentials: send Authorization: Bearer <token>"),
        ("", "missing credentials"),
        ("am-token", "the word Bearer is required"),  # the token alone, as before
        ("Token am-token", "the word Bearer is required"),
        ("Basic am-token", "the word Bearer is required"),
        ("Beareram-token", "the word Bearer is required"),
        ("Bearer", "wrong bearer token"),
        ("Bearer am-token-and-more", "wrong bearer token"),
    ],
)
def test_bearer_token_needs_the_bearer_scheme(
    guarded: Server, authorization: str | None, needle: str
) -> None:
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    headers = {} if authorization is None else {"authorization": authorization}
    answer = guarded.post("am", body, **headers)
    assert answer.status_code == 401
    assert needle in answer.json()["error"]
    assert "am-token" not in answer.text  # the answer never quotes a credential
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    assert guarded.stored_nothing()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_word_is_case_insensitive(guarded: Server, scheme: str) -> None:
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    answer = guarded.post("am", body, authorization=f"{scheme}   am-token ")
    assert answer.status_code == 200, answer.text
    assert answer.json()["opened"] == ["INC-0001"]


def test_basic_auth_refusals_say_what_to_send(guarded: Server) -> None:
    dd = raw("datadog/triggered_custom_payload_capture_2015.json")
    missing = guarded.post("dd", dd)
    assert missing.status_code == 401
    assert missing.json()["error"] == "send Authorization: Basic <base64 of user:password>"
    assert missing.headers["www-authenticate"].startswith("Basic ")
    bearer = guarded.post("dd", dd, authorization="Bearer dd-pass")
    assert bearer.json()["error"] == "send Authorization: Basic <base64 of user:password>"
    bad = "Basic " + base64.b64encode(b"datadog:nope").decode()
    assert guarded.post("dd", dd, authorization=bad).json()["error"] == "wrong user or password"
    assert guarded.stored_nothing()


def grafana_headers(body: bytes, stamp: int, secret: bytes = b"grafana-secret") -> dict:
    digest = hmac.new(secret, str(stamp).encode() + b":" + body, hashlib.sha256)
    return {
        "X-Grafana-Alerting-Signature": digest.hexdigest(),
        "X-Grafana-Alerting-Signature-Timestamp": str(stamp),
    }


def test_grafana_signature_with_timestamp(guarded: Server) -> None:
    body = raw("grafana/unified_firing_default_payload_upstream_test.json")
    headers = grafana_headers(body, int(time.time()))
    wrong = guarded.post("graf", body, **{**headers, "X-Grafana-Alerting-Signature": "0" * 64})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "X-Grafana-Alerting-Signature: signature does not match"
    untimed = guarded.post(
        "graf", body, **{"X-Grafana-Alerting-Signature": headers["X-Grafana-Alerting-Signature"]}
    )
    assert untimed.status_code == 401  # the timestamp header is required
    assert untimed.json()["error"] == "missing X-Grafana-Alerting-Signature-Timestamp header"
    assert guarded.stored_nothing()
    answer = guarded.post("graf", body, **headers)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("age_s", [24 * 3600, 301, -301, -24 * 3600])
def test_grafana_signed_timestamp_outside_five_minutes_is_a_replay(
    guarded: Server, age_s: int
) -> None:
    """A captured, correctly signed delivery sent again a day (or 5 min) later is refused."""
    body = raw("grafana/unified_firing_default_payload_upstream_test.json")
    answer = guarded.post("graf", body, **grafana_headers(body, int(time.time()) - age_s))
    assert answer.status_code == 401
    assert "more than 300 s from now" in answer.json()["error"]
    assert guarded.stored_nothing()


def test_grafana_replay_window_is_configurable(guarded: Server) -> None:
    body = raw("grafana/unified_firing_default_payload_upstream_test.json")
    half_hour_old = grafana_headers(body, int(time.time()) - 1800)
    assert guarded.post("graf", body, **half_hour_old).status_code == 401
    assert guarded.post("graf-slack", body, **half_hour_old).status_code == 200
    day_old = grafana_headers(body, int(time.time()) - 24 * 3600)
    refused = guarded.post("graf-slack", body, **day_old)
    assert refused.status_code == 401
    assert "more than 3600 s from now" in refused.json()["error"]


def test_pagerduty_signature_from_the_real_vector(guarded: Server) -> None:
    body = raw("pagerduty/signed_priority_updated.raw.json")
    text = raw("pagerduty/signed_priority_updated.signature.txt").decode()
    header = next(
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if "x-pagerduty-signature" in line.lower()
    )
    assert (
        guarded.post("pd", body, **{"X-PagerDuty-Signature": "v1=" + "0" * 64}).status_code == 401
    )
    answer = guarded.post("pd", body, **{"X-PagerDuty-Signature": header, "X-Webhook-Id": "w1"})
    assert answer.status_code == 200, answer.text
    retry = guarded.post("pd", body, **{"X-PagerDuty-Signature": header, "X-Webhook-Id": "w1"})
    assert retry.json()["status"] == "duplicate"


def test_a_byte_identical_repeat_is_answered_without_decoding_it_again(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alertmanager re-sends an unchanged group byte for byte: this process answers it from
    its dedup mark alone. A body it has not accepted is still decoded and checked."""
    import handlers.webhooks

    decoded: list[bytes] = []
    real = handlers.webhooks.decode_body

    def counting(raw_body: bytes) -> object:
        decoded.append(raw_body)
        return real(raw_body)

    monkeypatch.setattr(handlers.webhooks, "decode_body", counting)
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    assert server.post("alertmanager", body).json()["opened"] == ["INC-0001"]
    assert len(decoded) == 1
    for _ in range(3):
        again = server.post("alertmanager", body)
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(decoded) == 1  # the repeats were not decoded
    # Under a sender's delivery id: the id is the key, whatever the bytes.
    assert server.post("alertmanager", body + b" ", **{"X-Webhook-Id": "d-7"}).json()["status"] in (
        "accepted",
        "duplicate",
    )
    assert len(decoded) == 2
    assert server.post("alertmanager", body, **{"X-Webhook-Id": "d-7"}).json()["status"] == (
        "duplicate"
    )
    assert len(decoded) == 2
    # Still checked: the same alert in other bytes is decoded (and folds as a repeat).
    resolved = raw("alertmanager/resolved_capture_am0.27.0.wire.json")
    assert server.post("alertmanager", resolved).json()["incidents"] == ["INC-0001"]
    assert len(decoded) == 3
    assert server.post("alertmanager", b"{not json").status_code == 400
    assert server.count(Incident) == 1


def test_sqlite_journal_locked_gives_503_then_the_retry_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path
) -> None:
    import shutil

    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    monkeypatch.setenv("WARROOM_DATABASE__CONNECT_TIMEOUT", "1s")
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    for server in make_server(f"sqlite:///{path}", tmp_path, monkeypatch):
        holder = sqlite3.connect(tmp_path / "locked.db-intake", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        refused = server.post("alertmanager", body)
        holder.execute("ROLLBACK")
        holder.close()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert server.stored_nothing()
        second = server.post("alertmanager", body).json()
        assert second["opened"] == ["INC-0001"], second
        assert server.post("alertmanager", body).json()["status"] == "duplicate"
        assert server.count(Incident) == 1


def test_sqlite_database_locked_the_alert_waits_in_the_journal_then_opens_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path
) -> None:
    """The database busy (a long transaction elsewhere) does not refuse alerts: they are
    journaled (202) and folded once it is free; the sender's retry changes nothing."""
    import shutil

    path = tmp_path / "busy.db"
    shutil.copy(sqlite_template, path)
    monkeypatch.setenv("WARROOM_DATABASE__CONNECT_TIMEOUT", "1s")
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")
    for server in make_server(f"sqlite:///{path}", tmp_path, monkeypatch):
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        first = server.post("alertmanager", body)
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "queued"
        retry = server.post("alertmanager", body)
        assert retry.status_code in (200, 202)
        holder.execute("ROLLBACK")
        holder.close()
        wait_for("the journaled alert to be folded", lambda s=server: s.count(Incident) == 1)
        wait_for("the journal to empty", lambda: not journal_rows(tmp_path / "busy.db-intake"))
        assert server.count(WebhookDelivery) == 1
        assert server.post("alertmanager", body).json()["status"] == "duplicate"
        assert server.count(Incident) == 1


def journal_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM intake_entry").fetchone()[0])


def test_postgres_refusing_connections_gives_503_then_recovers(
    pg_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import create_pg_database, drop_pg_database

    name, url = create_pg_database(pg_server)
    from bot.store.migrate import upgrade

    upgrade(url)
    body = raw("alertmanager/firing_capture_am0.27.0.wire.json")

    def allow(on: bool) -> None:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.SQL("true" if on else "false")
                )
            )
            if not on:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    try:
        for server in make_server(url, tmp_path, monkeypatch):
            allow(False)
            refused = server.post("alertmanager", body)
            assert refused.status_code == 503
            assert refused.json()["error"] == "storage unavailable, retry later"
            allow(True)
            assert server.post("alertmanager", body).json()["opened"] == ["INC-0001"]
            assert server.post("alertmanager", body).json()["status"] == "duplicate"
            assert server.count(Incident) == 1
            assert server.count(Alert) == 1
    finally:
        allow(True)
        drop_pg_database(pg_server, name)


def test_a_failure_inside_answers_500_with_the_logged_reference(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(body: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr("handlers.webhooks.get_parser", lambda source: broken)
    answer = server.post("alertmanager", raw("alertmanager/firing_capture_am0.27.0.wire.json"))
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    reference = answer.json()["reference"]
    assert answer.json()["error"] == "internal error"
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged
    assert logged[0].exc_info is not None  # the traceback is in the log, not in the answer
    assert server.stored_nothing()


def test_webhooks_before_the_lifespan_ask_to_retry_and_other_methods_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/w.db")
    client = TestClient(create_app(load_settings()))  # no `with`: the lifespan does not run
    early = client.post("/webhooks/alertmanager", content=b"{}")
    assert early.status_code == 503
    assert early.headers["retry-after"] == "5"
    assert client.get("/webhooks/alertmanager").status_code == 405
