"""The pages managers read: incidents, one incident, its post-mortem, and a report.

Server-rendered Jinja2 (autoescaped), usable without JavaScript. Every page needs
the login token from ``web.token`` (``WARROOM_WEB__TOKEN``); a session cookie keeps the
login for 12 hours, and logging out ends the session on the server (``bot.store.sessions``).
Without a configured token every page answers 401 and says how to turn the pages on.

Every form POST (log in, log out) must come from these pages: it carries a CSRF token that
matches its cookie (log in) or its session (log out), and a browser's ``Origin`` /
``Sec-Fetch-Site`` must say same-origin. Wrong tokens are limited per client address: after
:data:`LOGIN_FAILURES` in :data:`LOGIN_WINDOW_S` seconds the login answers 429.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from markdown_it import MarkdownIt
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.core import Core
from bot.delivery.exports import exported
from bot.delivery.transcript import transcript_of
from bot.drafts import postmortem_markdown
from bot.errors import IncidentNotFound, UserError
from bot.incidents.reports import report
from bot.incidents.statuspage import status_pages
from bot.store.models import Alert, Incident, WebSession
from bot.store.sessions import find_session, open_session, revoke_session

COOKIE = "warroom_session"
CSRF_COOKIE = "warroom_login_csrf"
SESSION_S = 12 * 3600
#: Wrong login tokens allowed per client address in a window, before 429.
LOGIN_FAILURES = 10
LOGIN_WINDOW_S = 60.0
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

Page = Callable[[Request], Awaitable[Response]]


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


def _token(request: Request) -> str | None:
    secret = _core(request).settings.web.token
    return secret.get_secret_value() if secret else None


async def session_of(request: Request) -> WebSession | None:
    """The live login session of this request, if any."""
    core = _core(request)
    return await find_session(core.db, request.cookies.get(COOKIE, ""), now=core.clock.now())


async def _logged_in(request: Request, token: str) -> bool:
    """Whether the request carries a live page session (``token`` is kept for the callers)."""
    return await session_of(request) is not None


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent by every client; the CSRF token still has to match
    own = {f"{request.url.scheme}://{request.url.netloc}"}
    public = _core(request).settings.server.public_url
    if public:
        parts = public.split("/")
        own.add("/".join(parts[:3]))
    return origin in own


class LoginLimiter:
    """Failed logins per client address in a sliding window (this process's view)."""

    def __init__(self, limit: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self.failures: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, client: str, now: float) -> int:
        """Seconds until ``client`` may try again; 0 when it may now."""
        seen = self.failures.get(client)
        if not seen:
            return 0
        while seen and now - seen[0] > self.window_s:
            seen.popleft()
        if len(seen) < self.limit:
            return 0
        return max(1, int(self.window_s - (now - seen[0])) + 1)

    def failed(self, client: str, now: float) -> None:
        self.failures[client].append(now)
        if len(self.failures) > 10_000:  # many addresses: forget the quietest
            for stale in [c for c, d in self.failures.items() if not d or now - d[-1] > 60]:
                del self.failures[stale]


def _limiter(request: Request) -> LoginLimiter:
    state = request.app.state
    if getattr(state, "login_limiter", None) is None:
        state.login_limiter = LoginLimiter()
    limiter: LoginLimiter = state.login_limiter
    return limiter


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _forbidden(request: Request, why: str) -> Response:
    return _render(request, "web/error.html.j2", {"message": why}, status=403)


def login_required(page: Page) -> Page:
    async def guarded(request: Request) -> Response:
        token = _token(request)
        if token is None:
            return _render(
                request,
                "web/off.html.j2",
                {"title": "Pages are off"},
                status=401,
            )
        session = await session_of(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        request.state.csrf = session.csrf  # for the logout form on every page
        try:
            return await page(request)
        except IncidentNotFound as error:
            return _render(request, "web/error.html.j2", {"message": str(error)}, status=404)
        except UserError as error:
            return _render(request, "web/error.html.j2", {"message": str(error)}, status=400)

    return guarded


async def login(request: Request) -> Response:
    token = _token(request)
    if token is None:
        return _render(request, "web/off.html.j2", {"title": "Pages are off"}, status=401)
    target = request.query_params.get("next", "/incidents")
    if not target.startswith("/") or target.startswith("//"):
        target = "/incidents"
    secure = (_core(request).settings.server.public_url or "").startswith("https://")
    if request.method == "GET":
        csrf = secrets.token_urlsafe(32)
        page = _render(
            request, "web/login.html.j2", {"next": target, "failed": False, "login_csrf": csrf}
        )
        page.set_cookie(
            CSRF_COOKIE, csrf, max_age=3600, httponly=True, samesite="strict", secure=secure
        )
        return page
    client, now = _client(request), time.monotonic()
    wait = _limiter(request).retry_after(client, now)
    if wait:
        page = _render(
            request,
            "web/error.html.j2",
            {"message": f"Too many wrong tokens from your address. Try again in {wait} s."},
            status=429,
        )
        page.headers["Retry-After"] = str(wait)
        return page
    form = await request.form()
    expected = request.cookies.get(CSRF_COOKIE, "")
    given_csrf = str(form.get("csrf", ""))
    if (
        not _same_origin(request)
        or not expected
        or not hmac.compare_digest(given_csrf.encode(), expected.encode())
    ):
        return _forbidden(
            request, "This login form came from another site or has expired: reload the page."
        )
    given = str(form.get("token", ""))
    if not hmac.compare_digest(given.encode(), token.encode()):
        _limiter(request).failed(client, now)
        return _render(
            request,
            "web/login.html.j2",
            {"next": target, "failed": True, "login_csrf": expected},
            status=401,
        )
    core = _core(request)
    made = await open_session(
        core.db, now=core.clock.now(), lifetime=timedelta(seconds=SESSION_S), client=client
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, made.cookie, max_age=SESSION_S, httponly=True, samesite="lax", secure=secure
    )
    response.delete_cookie(CSRF_COOKIE)
    return response


async def logout(request: Request) -> Response:
    session = await session_of(request)
    if session is not None:
        form = await request.form()
        given = str(form.get("csrf", ""))
        if not _same_origin(request) or not hmac.compare_digest(
            given.encode(), session.csrf.encode()
        ):
            return _forbidden(request, "This logout came from another site: log out from a page.")
        core = _core(request)
        await revoke_session(core.db, request.cookies.get(COOKIE, ""), now=core.clock.now())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@login_required
async def incident_list(request: Request) -> Response:
    core = _core(request)
    query = request.query_params
    since = _date(query.get("since"))
    until = _date(query.get("until"))
    found = await core.incidents.find(
        statuses=[query["status"]] if query.get("status") else None,
        severity=query.get("severity") or None,
        service=query.get("service") or None,
        since=since,
        until=until + timedelta(days=1) if until else None,
        order=query.get("order") or "newest",
        limit=500,
    )
    filters = {
        k: query.get(k, "") for k in ("status", "severity", "service", "since", "until", "order")
    }
    return _render(
        request,
        "web/incidents.html.j2",
        {
            "incidents": found,
            "filters": filters,
            "severities": core.incidents.scheme.names,
            "statuses": ["investigating", "identified", "mitigating", "monitoring", "resolved"],
        },
    )


@login_required
async def incident_page(request: Request) -> Response:
    core = _core(request)
    key = request.path_params["key"]
    incident = await core.incidents.get(key)
    events = await core.incidents.timeline(key)
    follow_ups = await core.incidents.follow_ups(key)
    alerts = await _alerts(core, incident)
    transcript = await transcript_of(core.db, incident.id or 0)
    runs = [e for e in events if e.kind.startswith("step_")]
    async with core.db.transaction(read_only=True) as session:
        exported_to = await exported(session, incident.id or 0)
        public = await status_pages(session, incident.id or 0)  # bot.incidents.statuspage
    return _render(
        request,
        "web/incident.html.j2",
        {
            "incident": incident,
            "exported": exported_to,
            "status_pages": public,
            "events": events,
            "follow_ups": follow_ups,
            "alerts": alerts,
            "transcript": transcript,
            "runs": runs,
        },
    )


@login_required
async def postmortem_page(request: Request) -> Response:
    core = _core(request)
    key = request.path_params["key"]
    incident = await core.incidents.get(key)
    text = await postmortem_markdown(core, key)
    html = _markdown.render(text)
    return _render(request, "web/postmortem.html.j2", {"incident": incident, "html": html})


@login_required
async def postmortem_download(request: Request) -> Response:
    core = _core(request)
    key = request.path_params["key"]
    incident = await core.incidents.get(key)
    text = await postmortem_markdown(core, key)
    name = f"{incident.key}-postmortem.md"
    return Response(
        text,
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@login_required
async def report_page(request: Request) -> Response:
    core = _core(request)
    data = await report(core.db, core.incidents.scheme, now=core.clock.now())
    return _render(request, "web/report.html.j2", {"report": data})


async def _alerts(core: Core, incident: Incident) -> list[Alert]:
    async with core.db.transaction(read_only=True) as session:
        query = select(Alert).where(col(Alert.incident_id) == incident.id).order_by(col(Alert.id))
        return list((await session.exec(query)).all())


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise UserError(f"Dates are written YYYY-MM-DD, not {text!r}.") from None


def _render(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    core = _core(request)
    csrf = getattr(request.state, "csrf", None)  # the session's, for the logout form
    html = core.templates.render(
        name, request_path=request.url.path, urlencode=urlencode, csrf=csrf, **context
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": "default-src 'self'; "
            "script-src 'none'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
            "form-action 'self'",
            "X-Frame-Options": "DENY",
        },
    )


ROUTES = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/incidents", incident_list),
    Route("/incidents/{key}", incident_page),
    Route("/incidents/{key}/postmortem", postmortem_page),
    Route("/incidents/{key}/postmortem.md", postmortem_download),
    Route("/report", report_page),
]
