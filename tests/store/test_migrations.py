"""Migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import bot.store.models  # noqa: F401
from bot.store.db import sync_url
from bot.store.migrate import current_revision, head_revision, upgrade


def test_schema_matches_models(database_url: str) -> None:
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == [], "models changed without a migration: run alembic revision --autogenerate"


def test_upgrade_is_idempotent_and_reports_the_revision(database_url: str) -> None:
    assert current_revision(database_url) == head_revision()
    before, after = upgrade(database_url)
    assert before == after == head_revision()


def test_counter_row_is_seeded(database_url: str) -> None:
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, value FROM counter")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("incident", 0)]
