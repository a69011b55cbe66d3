"""A manager's visit in headless Chromium (Debian's build, driven by Playwright; no download)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import LiveServer, service_missing
from .test_pages import TOKEN, seed

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screens"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def site(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    db = tmp_path / "browser.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    monkeypatch.setenv("DATABASE_URL", url)
    seed(url)
    server = LiveServer(url, tmp_path, env={"WARROOM_WEB__TOKEN": TOKEN})
    yield server
    server.stop()


def test_a_manager_reads_an_incident_and_its_postmortem(site: LiveServer, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        service_missing("Chromium", "Install it: apt-get install chromium.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("Playwright", "Install the dev extras: pip install -e '.[dev]'.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        page.goto(f"{site.url}/incidents/INC-0001")
        assert "/login" in page.url  # not logged in: sent to the login page
        page.fill("input[name=token]", TOKEN)
        page.click("main button[type=submit]")
        page.wait_for_url("**/incidents/INC-0001")
        page.screenshot(path=str(ARTIFACTS / "incident.png"), full_page=True)
        assert page.evaluate("() => window.__pwned") is None
        assert "<script>window.__pwned=1</script>" in page.inner_text("h1")

        page.click("header >> text=Incidents")
        page.wait_for_url("**/incidents")
        page.screenshot(path=str(ARTIFACTS / "incidents.png"), full_page=True)
        rows = page.locator("tbody tr")
        assert rows.count() == 2

        page.click("text=INC-0001")
        page.click("text=Post-mortem draft")
        page.wait_for_url("**/incidents/INC-0001/postmortem")
        page.screenshot(path=str(ARTIFACTS / "postmortem.png"), full_page=True)
        assert "DRAFT" in page.inner_text("article")
        with page.expect_download() as waiting:
            page.click("text=Download Markdown")
        download = waiting.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        assert download.suggested_filename == "INC-0001-postmortem.md"
        assert "DRAFT" in saved.read_text()
        assert page.evaluate("() => window.__pwned") is None
        browser.close()
    assert dialogs == []
    assert (ARTIFACTS / "postmortem.png").stat().st_size > 10_000


def test_the_pages_resist_csrf_replayed_cookies_and_guessing(site: LiveServer) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        service_missing("Chromium", "Install it: apt-get install chromium.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("Playwright", "Install the dev extras: pip install -e '.[dev]'.")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()

        # Login CSRF: another site's page posts the right token into our login form.
        page.set_content(
            f'<form method="post" action="{site.url}/login">'
            f'<input name="token" value="{TOKEN}"><button id="go">go</button></form>'
        )
        with page.expect_navigation():
            page.click("#go")
        assert "came from another site" in page.inner_text("body")
        page.goto(f"{site.url}/incidents")
        assert "/login" in page.url  # the forged login did not log this browser in

        # A real login, then logout; the cookie copied before the logout no longer works.
        page.fill("input[name=token]", TOKEN)
        page.click("main button[type=submit]")
        page.wait_for_url("**/incidents")
        copied = [c for c in context.cookies() if c["name"] == "warroom_session"]
        assert copied
        page.click("text=Log out")
        page.wait_for_url("**/login")
        context.add_cookies(copied)  # type: ignore[arg-type]
        page.goto(f"{site.url}/incidents")
        assert "/login" in page.url

        # Guessing: after ten wrong tokens the login answers 429, even to the right one.
        for _ in range(10):
            page.fill("input[name=token]", "guess")
            page.click("main button[type=submit]")
            page.wait_for_selector("text=That token is not right")
        page.fill("input[name=token]", TOKEN)
        with page.expect_response(lambda r: r.url.startswith(f"{site.url}/login")) as answer:
            page.click("main button[type=submit]")
        assert answer.value.status == 429
        assert "Too many wrong tokens" in page.inner_text("body")
        browser.close()
