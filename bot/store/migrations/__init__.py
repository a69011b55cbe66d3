"""Schema migrations (Alembic), run the same way on SQLite and Postgres."""
