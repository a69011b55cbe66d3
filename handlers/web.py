"""The pages managers read: incidents, one incident, its post-mortem, and a report.

Server-rendered Jinja2 (autoescaped), usable without JavaScript. Every page needs
the login token from ``web.token`` (``WARROOM_WEB__TOKEN``); a signed session
cookie keeps the login for 12 hours. Without a configured token every page answers
401 and says how to turn the pages on.
"""

from __future__ import annotations

import hashlib
import hmac
import time
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
from bot.delivery.transcript import transcript_of
from bot.drafts import postmortem_markdown
from bot.errors import IncidentNotFound, UserError
from bot.incidents.reports import report
from bot.store.models import Alert, Incident

COOKIE = "warroom_session"
SESSION_S = 12 * 3600
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

Page = Callable[[Request], Awaitable[Response]]


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


def _token(request: Request) -> str | None:
    secret = _core(request).settings.web.token
    return secret.get_secret_value() if secret else None


def _sign(token: str, expires: int) -> str:
    digest = hmac.new(token.encode(), f"session:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{digest}"


def _logged_in(request: Request, token: str) -> bool:
    value = request.cookies.get(COOKIE, "")
    expires, _, _ = value.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(value, _sign(token, int(expires)))


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
        if not _logged_in(request, token):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
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
    if request.method == "GET":
        return _render(request, "web/login.html.j2", {"next": target, "failed": False})
    form = await request.form()
    given = str(form.get("token", ""))
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _render(request, "web/login.html.j2", {"next": target, "failed": True}, status=401)
    response = RedirectResponse(target, status_code=303)
    expires = int(time.time()) + SESSION_S
    secure = (_core(request).settings.server.public_url or "").startswith("https://")
    response.set_cookie(
        COOKIE,
        _sign(token, expires),
        max_age=SESSION_S,
        httponly=True,
        samesite="lax",
        secure=secure,
    )
    return response


async def logout(request: Request) -> Response:
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
    return _render(
        request,
        "web/incident.html.j2",
        {
            "incident": incident,
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
    html = core.templates.render(
        name, request_path=request.url.path, urlencode=urlencode, **context
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": "default-src 'self'; "
            "script-src 'none'; style-src 'self' 'unsafe-inline'"
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
