"""Apply the schema migrations (``warroom db upgrade``; also at server start)."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.errors import StorageUnavailable
from bot.store.db import sync_url

log = logging.getLogger(__name__)
_SCRIPTS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as error:
        raise StorageUnavailable(f"the database is unavailable: {error.orig}") from error
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str]:
    """Migrate ``url`` to ``revision``; return (revision before, revision after)."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            after = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as error:
        raise StorageUnavailable(f"the database is unavailable: {error.orig}") from error
    finally:
        engine.dispose()
    if before != after:
        log.info("database migrated from %s to %s", before or "empty", after)
    return before, after or ""
