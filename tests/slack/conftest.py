"""Fixtures shared with the runbook tests: a real Postgres database the runbooks may act on."""

from tests.runbooks.conftest import target_dsn  # noqa: F401  (re-exported fixture)
