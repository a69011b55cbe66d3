"""Logging in to the pages the way a browser does: fetch the form, send its CSRF token back."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def form_csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found[1]


def login_as(client: TestClient, token: str, path: str = "/login") -> object:
    """GET the login form, then POST ``token`` with the form's CSRF token; the answer."""
    form = client.get(path)
    assert form.status_code == 200, form.text
    return client.post(path, data={"token": token, "csrf": form_csrf(form.text)})
