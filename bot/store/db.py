"""The database: one async engine, short transactions, storage errors made explicit.

SQLite (the default, ``./incidents.db``) runs in WAL mode with foreign keys on;
write transactions start with ``BEGIN IMMEDIATE`` so two writers queue on the
busy timeout instead of failing half-way. Postgres runs through psycopg 3.

A database that cannot be reached, times out or refuses to write raises
:class:`~bot.errors.StorageUnavailable`; callers answer 503 and nothing is
half-written, because every change is one transaction.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.sql.dml import ReturningInsert
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import StorageUnavailable

log = logging.getLogger(__name__)

Row = TypeVar("Row", bound=SQLModel)

_READ_ONLY = "warroom_read_only"
_STORAGE_ERRORS = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    OSError,
    TimeoutError,
)


def async_url(url: str) -> str:
    """The SQLAlchemy URL with the async driver warroom uses for ``url``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (for migrations)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


class Database:
    """An async engine plus the two ways warroom uses it: read and write transactions."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.connect_timeout = connect_timeout
        self.dialect = make_url(self.url).get_backend_name()
        connect_args: dict[str, Any] = {}
        # A server may drop idle connections, a SQLite file does not: no ping (a thread hop) there.
        options: dict[str, Any] = {"pool_pre_ping": self.dialect != "sqlite"}
        if self.dialect == "sqlite":
            connect_args["timeout"] = connect_timeout
        else:
            connect_args["connect_timeout"] = max(1, int(connect_timeout))
            # A statement stuck behind a lock gives up instead of hanging a webhook.
            connect_args["options"] = "-c statement_timeout=10000 -c lock_timeout=5000"
            options.update(
                pool_size=pool_size, max_overflow=pool_size, pool_timeout=connect_timeout
            )
        self.engine: AsyncEngine = create_async_engine(
            self.url, connect_args=connect_args, **options
        )
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine, busy_ms=int(connect_timeout * 1000))
        # SQLite has one writer at a time: queue this process's writers fairly instead of
        # letting them poll the file lock (the busy timeout is left for other processes).
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self._writer = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._reader = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}),
            class_=AsyncSession,
            expire_on_commit=False,
        )

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        maker = self._reader if read_only else self._writer
        lock = None if read_only else self._write_lock
        try:
            async with _maybe(lock), maker() as session, session.begin():
                yield session
        except _STORAGE_ERRORS as error:
            log.warning("storage unavailable: %s", _short(error))
            raise StorageUnavailable(f"the database is unavailable: {_short(error)}") from error

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database answers a query."""
        async with self.transaction(read_only=True) as session:
            await session.exec(sa.text("SELECT 1"))  # type: ignore[call-overload]

    async def dispose(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _maybe(lock: asyncio.Lock | None) -> AsyncIterator[None]:
    if lock is None:
        yield
        return
    async with lock:
        yield


def _short(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _configure_sqlite(engine: AsyncEngine, *, busy_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@functools.cache
def _on_conflict(
    dialect: str, model: type[SQLModel], unique: tuple[str, ...], *, lock: bool
) -> ReturningInsert[Any]:
    """INSERT … ON CONFLICT … RETURNING for ``model``, values given when run.

    Built once per model: webhooks run these on every delivery.
    """
    insert = postgresql.insert(model) if dialect == "postgresql" else sqlite.insert(model)
    if not lock:
        return insert.on_conflict_do_nothing(index_elements=unique).returning(
            sa.literal_column("id")
        )
    # On conflict the existing row is "updated" to itself: that locks it as
    # SELECT … FOR UPDATE would, and returns it as it was.
    unchanged = {unique[0]: insert.excluded[unique[0]]}
    return insert.on_conflict_do_update(index_elements=unique, set_=unchanged).returning(model)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind else "sqlite"


async def insert_ignore(
    session: AsyncSession,
    model: type[SQLModel],
    values: dict[str, object],
    unique: tuple[str, ...],
) -> bool:
    """INSERT unless the unique key exists; True if this call inserted the row."""
    statement = _on_conflict(_dialect(session), model, unique, lock=False)
    return (await session.exec(statement, params=values)).first() is not None


async def insert_or_lock(
    session: AsyncSession,
    model: type[Row],
    values: dict[str, object],
    unique: tuple[str, ...],
) -> Row:
    """The row of ``unique`` key, inserted from ``values`` if missing, locked until commit."""
    statement = _on_conflict(_dialect(session), model, unique, lock=True)
    options = {"populate_existing": True}  # the row as stored, not a copy the session holds
    row: Row = (
        await session.exec(statement, params=values, execution_options=options)
    ).scalar_one()
    return row
