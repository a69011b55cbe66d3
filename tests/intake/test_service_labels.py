"""Which label names an alert's service: ``intake.service_labels``, first present wins.

Through the real ASGI app with the real Alertmanager capture, on SQLite and Postgres.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, create_engine, select
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.errors import ConfigError
from bot.store.db import sync_url
from bot.store.models import Alert, Incident
from handlers.app import create_app
from tests.intake.alerts.payloads import load
from tests.web.forms import login_as

CAPTURE = "alertmanager/firing_capture_am0.27.0.json"  # labels service_name="frontend"
JSON = {"content-type": "application/json"}


class Server:
    def __init__(self, client: TestClient, url: str) -> None:
        self.client = client
        self.url = url

    def post(self, name: str, body: dict) -> dict:
        answer = self.client.post(f"/webhooks/{name}", content=json.dumps(body), headers=JSON)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def rows(self, model: type) -> list:
        engine = create_engine(sync_url(self.url))
        with Session(engine) as session:
            found = list(session.exec(select(model).order_by(col(model.id))).all())
        engine.dispose()
        return found

    def services(self) -> list[str | None]:
        return [incident.service for incident in self.rows(Incident)]


def serve(
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", url)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "warroom.yaml"
    path.write_text(config)
    with TestClient(create_app(load_settings(path))) as client:
        yield Server(client, url)


@pytest.fixture
def default(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from serve(database_url, tmp_path, monkeypatch, "log_level: INFO\n")


def relabelled(labels: dict[str, str], group: str) -> dict:
    """The capture with its alert's service label replaced (and a group of its own)."""
    body = copy.deepcopy(load(CAPTURE))
    alert = body["alerts"][0]
    alert["labels"] = {
        k: v for k, v in alert["labels"].items() if k not in ("service_name", "service", "job")
    }
    alert["labels"].update(labels)
    alert["fingerprint"] = f"fp-{group}"
    body["groupKey"] = f"{{}}:{{group={group!r}}}"
    return body


def test_the_real_opentelemetry_capture_gets_its_service_from_service_name(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = {"WARROOM_WEB__TOKEN": "manager-token"}
    for server in serve(database_url, tmp_path, monkeypatch, "log_level: INFO\n", token):
        answer = server.post("alertmanager", load(CAPTURE))
        assert answer["opened"] == ["INC-0001"]
        assert server.services() == ["frontend"]
        login = login_as(server.client, "manager-token")
        assert login.status_code == 200  # followed to the list
        listed = server.client.get("/incidents?service=frontend")
        assert "INC-0001" in listed.text
        assert "INC-0001" not in server.client.get("/incidents?service=job").text


def test_the_default_list_in_order(default: Server) -> None:
    default.post("alertmanager", relabelled({"service.name": "cart"}, "a"))
    default.post("alertmanager", relabelled({"job": "node", "service_name": "ads"}, "b"))
    default.post("alertmanager", relabelled({"job": "node", "service": "checkout"}, "c"))
    default.post("alertmanager", relabelled({"job": "node"}, "d"))
    default.post("alertmanager", relabelled({"service": "", "service_name": "quote"}, "e"))
    default.post("alertmanager", relabelled({}, "f"))
    assert default.services() == ["cart", "ads", "checkout", "node", "quote", None]


def test_a_custom_list(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = "intake:\n  service_labels: [app, service_name]\n"
    for server in serve(database_url, tmp_path, monkeypatch, config):
        server.post("alertmanager", relabelled({"service": "ignored", "app": "billing"}, "a"))
        server.post("alertmanager", load(CAPTURE))  # service_name is still on the list
        server.post("alertmanager", relabelled({"service": "ignored", "job": "node"}, "c"))
        assert server.services() == ["billing", "frontend", None]


def test_an_endpoint_service_is_the_default_when_the_alert_names_none(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = "webhooks:\n  am:\n    source: alertmanager\n    service: shop\n"
    for server in serve(database_url, tmp_path, monkeypatch, config):
        server.post("am", load(CAPTURE))
        server.post("am", relabelled({}, "b"))
        assert server.services() == ["frontend", "shop"]
        alerts = server.rows(Alert)
        assert "service" not in alerts[0].labels  # the alert's own labels are kept as sent
        assert alerts[1].labels["service"] == "shop"


def test_an_empty_list_or_name_is_a_configuration_mistake(tmp_path: Path) -> None:
    for value in ("[]", '[service, ""]'):
        path = tmp_path / "warroom.yaml"
        path.write_text(f"intake:\n  service_labels: {value}\n")
        with pytest.raises(ConfigError) as raised:
            load_settings(path)
        assert "service_labels" in str(raised.value)
