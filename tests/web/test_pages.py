"""The manager pages over HTTP: login, filters, escaping."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.core import Core
from handlers.app import create_app
from tests.web.forms import form_csrf, login_as

TOKEN = "manager-token-123"
PAGES = [
    "/incidents",
    "/incidents/INC-0001",
    "/incidents/INC-0001/postmortem",
    "/incidents/INC-0001/postmortem.md",
    "/report",
]


def environment(monkeypatch: pytest.MonkeyPatch, database_url: str, token: str | None) -> None:
    for var in list(os.environ):
        if var.startswith(("WARROOM_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("DATABASE_URL", database_url)
    if token:
        monkeypatch.setenv("WARROOM_WEB__TOKEN", token)


def seed(database_url: str) -> None:
    async def go() -> None:
        core = Core.build(load_settings())
        try:
            await core.incidents.declare(
                title='Checkout <script>window.__pwned=1</script> & "quotes"',
                severity="P1",
                actor="U1",
                service="checkout",
                impact="*bold* [link](javascript:alert(1))",
            )
            await core.incidents.declare(
                title="Cache failure", severity="P3", actor="U2", service="cache"
            )
            await core.incidents.resolve("INC-2", actor="U2", root_cause="no eviction policy")
            await core.delivery().drain()
        finally:
            await core.close()

    asyncio.run(go())


@pytest.fixture
def client(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    environment(monkeypatch, database_url, TOKEN)
    seed(database_url)
    with TestClient(create_app(load_settings()), follow_redirects=False) as test_client:
        yield test_client


def login(client: TestClient) -> None:
    answer = login_as(client, TOKEN, "/login?next=/incidents")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/incidents"


def test_without_login_every_page_redirects_to_login(client: TestClient) -> None:
    for page in PAGES:
        answer = client.get(page)
        assert answer.status_code == 303, page
        assert answer.headers["location"].startswith("/login?next=")


def test_a_wrong_token_is_refused(client: TestClient) -> None:
    answer = login_as(client, "guess")
    assert answer.status_code == 401
    assert "That token is not right" in answer.text
    assert client.get("/incidents").status_code == 303


def test_without_a_configured_token_pages_are_401(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment(monkeypatch, database_url, None)
    with TestClient(create_app(load_settings()), follow_redirects=False) as anonymous:
        for page in [*PAGES, "/login"]:
            answer = anonymous.get(page)
            assert answer.status_code == 401, page
            assert "WARROOM_WEB__TOKEN" in answer.text


def test_list_filters_and_sorts(client: TestClient) -> None:
    login(client)
    page = client.get("/incidents")
    assert page.status_code == 200
    assert page.text.index("INC-0002") < page.text.index("INC-0001")  # newest first
    resolved = client.get("/incidents", params={"status": "resolved"}).text
    assert "INC-0002" in resolved
    assert ">INC-0001<" not in resolved
    assert ">INC-0002<" not in client.get("/incidents", params={"service": "checkout"}).text
    by_severity = client.get("/incidents", params={"order": "severity"}).text
    assert by_severity.index(">INC-0001<") < by_severity.index(">INC-0002<")
    assert client.get("/incidents", params={"since": "2999-01-01"}).text.count("No incidents") == 1
    bad = client.get("/incidents", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "YYYY-MM-DD" in bad.text


def test_incident_page_escapes_what_came_from_users(client: TestClient) -> None:
    login(client)
    page = client.get("/incidents/INC-0001")
    assert page.status_code == 200
    assert "<script>window.__pwned" not in page.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert "Local transcript" in page.text
    assert client.get("/incidents/INC-0042").status_code == 404


def test_report_page(client: TestClient) -> None:
    login(client)
    page = client.get("/report")
    assert page.status_code == 200
    assert "2 incidents, 1 still open." in page.text
    assert "<svg" in page.text


def test_logout_ends_the_session(client: TestClient) -> None:
    login(client)
    page = client.get("/incidents")
    assert page.status_code == 200
    client.post("/logout", data={"csrf": form_csrf(page.text)})  # the page's own logout form
    assert client.get("/incidents").status_code == 303
