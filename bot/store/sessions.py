"""Logins to the manager pages: created at login, looked up on every page, revoked at logout.

The cookie carries a random secret; the database keeps only its SHA-256, with the session's
CSRF token, its expiry and, once logged out, when it was revoked. A copied cookie is worth
nothing after logout, and a stolen database table does not hold usable cookies.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, delete

from bot.store.db import Database
from bot.store.models import WebSession


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str  # what the browser keeps
    csrf: str  # what its forms send back


def _id(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def open_session(
    db: Database, *, now: datetime, lifetime: timedelta, client: str = ""
) -> NewSession:
    """Record a new login; expired sessions are purged on the way."""
    made = NewSession(cookie=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32))
    async with db.transaction() as session:
        await session.exec(delete(WebSession).where(col(WebSession.expires_at) < now))
        session.add(
            WebSession(
                id=_id(made.cookie),
                csrf=made.csrf,
                client=client[:64],
                created_at=now,
                expires_at=now + lifetime,
            )
        )
    return made


async def find_session(db: Database, cookie: str, *, now: datetime) -> WebSession | None:
    """The live session of ``cookie``: not expired, not revoked; else None."""
    if not cookie:
        return None
    async with db.transaction(read_only=True) as session:
        found = await session.get(WebSession, _id(cookie))
    if found is None or found.revoked_at is not None or found.expires_at <= now:
        return None
    return found


async def revoke_session(db: Database, cookie: str, *, now: datetime) -> bool:
    """End the session of ``cookie`` on the server; True if it was live."""
    async with db.transaction() as session:
        found = await session.get(WebSession, _id(cookie))
        if found is None or found.revoked_at is not None:
            return False
        found.revoked_at = now
        session.add(found)
    return True
