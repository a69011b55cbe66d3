"""The pages' forms resist login CSRF, logout ends the session on the server, guessing is slowed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from bot.config.settings import load_settings
from bot.store.db import Database
from bot.store.models import WebSession
from handlers.app import create_app
from handlers.web import COOKIE, LOGIN_FAILURES
from tests.web.forms import form_csrf, login_as
from tests.web.test_pages import TOKEN, environment, seed


@pytest.fixture
def client(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    environment(monkeypatch, database_url, TOKEN)
    seed(database_url)
    with TestClient(create_app(load_settings()), follow_redirects=False) as test_client:
        yield test_client


def logged_in(client: TestClient) -> bool:
    return client.get("/incidents").status_code == 200


def test_a_login_without_the_forms_token_is_refused(client: TestClient) -> None:
    client.get("/login")  # has the CSRF cookie, but the POST does not send the token
    answer = client.post("/login", data={"token": TOKEN})
    assert answer.status_code == 403
    assert "another site" in answer.text
    assert COOKIE not in answer.cookies
    assert not logged_in(client)


def test_a_login_posted_from_another_site_is_refused(client: TestClient) -> None:
    csrf = form_csrf(client.get("/login").text)
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        answer = client.post("/login", data={"token": TOKEN, "csrf": csrf}, headers=headers)
        assert answer.status_code == 403, headers
    assert not logged_in(client)
    same = client.post(
        "/login",
        data={"token": TOKEN, "csrf": csrf},
        headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"},
    )
    assert same.status_code == 303
    assert logged_in(client)


def test_logout_revokes_the_session_so_a_copied_cookie_stops_working(
    client: TestClient, database_url: str
) -> None:
    assert login_as(client, TOKEN).status_code == 303
    copied = client.cookies[COOKIE]
    page = client.get("/incidents")
    answer = client.post("/logout", data={"csrf": form_csrf(page.text)})
    assert answer.status_code == 303
    assert not logged_in(client)
    client.cookies.set(COOKIE, copied)  # the cookie kept from before the logout
    assert client.get("/incidents").status_code == 303  # sent to the login page
    # The database holds the cookie's hash, not the cookie itself.
    stored = asyncio.run(_sessions(database_url))
    assert stored
    assert all(s.id != copied for s in stored)
    assert all(s.revoked_at is not None for s in stored)


def test_a_logout_from_another_site_is_refused_and_changes_nothing(client: TestClient) -> None:
    assert login_as(client, TOKEN).status_code == 303
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert logged_in(client)


def test_guessing_the_token_is_limited_per_address(client: TestClient) -> None:
    csrf = form_csrf(client.get("/login").text)
    for _ in range(LOGIN_FAILURES):
        assert client.post("/login", data={"token": "guess", "csrf": csrf}).status_code == 401
    limited = client.post("/login", data={"token": TOKEN, "csrf": csrf})  # even the right one
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "Too many wrong tokens" in limited.text
    assert not logged_in(client)


async def _sessions(database_url: str) -> list[WebSession]:
    db = Database(database_url)
    try:
        async with db.transaction(read_only=True) as session:
            return list((await session.exec(select(WebSession))).all())
    finally:
        await db.dispose()
