"""The ``postgres`` kind: fixed SQL from the runbook, parameters always bound (async psycopg).

A step's ``sql`` is one statement. Values are named placeholders, ``%(minutes)s``, bound by
the driver; table names are ``{table}``, declared as ``identifier`` parameters, checked
against a strict pattern and quoted by ``psycopg.sql.Identifier`` (an identifier may also be
bound as a value, e.g. ``to_regclass(%(table)s)``). A literal ``%`` is
written ``%%`` and a literal brace ``{{`` / ``}}``. Nothing from chat is ever formatted into
the SQL text.

Each run opens its own connection (``application_name`` ``warroom <runbook>/<step>``):

- a diagnostic runs in ``BEGIN READ ONLY`` with ``statement_timeout`` and ``lock_timeout``
  set locally, and is rolled back;
- a mitigation runs in a read-write transaction that is committed, or with
  ``autocommit: true`` for statements that cannot run in one (``VACUUM``);
- past the timeout the server cancels the statement; should the server not answer in
  time, the client sends a cancel request itself and closes the connection, so nothing
  keeps running on the server.

``requires_extension: pg_stat_statements`` turns a missing extension into a clear
message instead of an error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from pydantic import BaseModel, ConfigDict, field_validator

from bot.runbooks.grading import Grade, Verdict
from bot.runbooks.kinds import Outcome, Problem, StepCall, StepFailed, jsonable
from bot.runbooks.params import IDENTIFIER, Duration, Param, ParamValue, format_duration
from bot.runbooks.targets import PostgresTarget, TargetType, TargetUnavailable

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"%\(([^)]*)\)s")
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


class PostgresSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sql: str
    autocommit: bool = False
    requires_extension: str | None = None
    lock_timeout: Duration = timedelta(seconds=3)

    @field_validator("requires_extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"{value!r} is not an extension name")
        return value


def scan_sql(text: str) -> tuple[set[str], set[str], list[str]]:
    """The value placeholders, identifier placeholders and problems of a step's SQL."""
    problems: list[str] = []
    if _statements(text) != 1:
        problems.append("write exactly one SQL statement (a ';' may only end it)")
    values = set(_PLACEHOLDER.findall(text))
    rest = _PLACEHOLDER.sub("", text).replace("%%", "")
    if "%" in rest:
        problems.append("a '%' that is not a %(name)s placeholder: write %% for a literal %")
    identifiers: set[str] = set()
    try:
        for _literal, field, spec, conversion in string.Formatter().parse(text):
            if field is None:
                continue
            if not field or spec or conversion or not re.fullmatch(r"[a-z][a-z0-9_]*", field):
                problems.append(
                    f"{{{field}}} is not an identifier placeholder: write {{name}}, "
                    "or {{ and }} for literal braces"
                )
            else:
                identifiers.add(field)
    except ValueError as error:
        problems.append(f"unbalanced braces ({error}): write {{{{ and }}}} for literal braces")
    return values, identifiers, problems


def _statements(text: str) -> int:
    """How many statements ``text`` holds, skipping quotes, comments and dollar quotes."""
    count, content, i, n = 0, False, 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"":
            end = i + 1
            while end < n:
                if text[end] == char and (end + 1 >= n or text[end + 1] != char):
                    break
                end += 2 if text[end] == char else 1
            i, content = end + 1, True
            continue
        if text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline + 1
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        dollar = _DOLLAR.match(text, i) if char == "$" else None
        if dollar:
            close = text.find(dollar.group(0), dollar.end())
            i, content = (n if close < 0 else close + len(dollar.group(0))), True
            continue
        if char == ";":
            count += 1 if content else 0
            content = False
        elif not char.isspace():
            content = True
        i += 1
    return count + (1 if content else 0)


def build_query(
    text: str, declared: Mapping[str, Param], values: Mapping[str, ParamValue]
) -> tuple[sql.Composed, dict[str, ParamValue]]:
    """The query (identifiers quoted in) and the values to bind. No value enters the text."""
    names, identifier_names, problems = scan_sql(text)
    if problems:
        raise ValueError("; ".join(problems))
    identifiers: dict[str, sql.Composable] = {}
    for name in identifier_names:
        value = values[name]
        if declared[name].type != "identifier" or not (
            isinstance(value, str) and IDENTIFIER.fullmatch(value)
        ):
            raise ValueError(f"{name} is not a checked identifier")
        identifiers[name] = sql.Identifier(*value.split("."))
    bound = {name: values[name] for name in names}
    return sql.SQL(text).format(**identifiers), bound


class PostgresKind:
    """Registered as ``postgres``; targets come from ``runbooks.targets.postgres``."""

    name = "postgres"
    target_type: TargetType = "postgres"
    spec_model = PostgresSpec
    mitigation_only = False

    def __init__(self, *, grace_s: float = 2.0) -> None:
        # How long past the step's timeout the client waits for the server's own cancel.
        self.grace_s = grace_s

    def check(
        self, spec: PostgresSpec, params: Mapping[str, Param], *, mitigation: bool
    ) -> list[Problem]:
        values, identifiers, problems = scan_sql(spec.sql)
        out = [Problem("sql", p) for p in problems]
        for name in sorted(values):
            param = params.get(name)
            if param is None:
                out.append(Problem("sql", f"%({name})s names no declared parameter"))
        for name in sorted(identifiers):
            param = params.get(name)
            if param is None or param.type != "identifier":
                out.append(Problem("sql", f"{{{name}}} must name a parameter of type identifier"))
        if spec.autocommit and not mitigation:
            out.append(Problem("autocommit", "diagnostics always run in a read-only transaction"))
        return out

    async def run(self, call: StepCall) -> Outcome:
        spec: PostgresSpec = call.spec
        target = call.target
        assert isinstance(target, PostgresTarget)
        try:
            dsn = target.dsn()
        except TargetUnavailable as error:
            raise StepFailed(str(error)) from None
        query, values = build_query(spec.sql, call.step.params, call.params)
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            async with asyncio.timeout(max(0.1, call.timeout + self.grace_s)):
                conn = await psycopg.AsyncConnection.connect(
                    dsn,
                    autocommit=True,
                    application_name=f"warroom {call.runbook}/{call.step.id}"[:63],
                    connect_timeout=max(2, math.ceil(min(call.timeout, 10.0))),
                )
                return await self._execute(conn, spec, query, values, call)
        except TimeoutError:
            if conn is not None:
                await _cancel(conn)
            raise StepFailed(
                f"timed out after {format_duration(timedelta(seconds=call.timeout))}; "
                "the statement was cancelled on the server"
            ) from None
        except asyncio.CancelledError:
            if conn is not None:
                await _cancel(conn)
            raise
        except psycopg.Error as error:
            raise StepFailed(_explain(error, call, spec, connected=conn is not None)) from None
        finally:
            if conn is not None:
                await conn.close()

    async def _execute(
        self,
        conn: psycopg.AsyncConnection[Any],
        spec: PostgresSpec,
        query: sql.Composed,
        values: dict[str, ParamValue],
        call: StepCall,
    ) -> Outcome:
        timeouts = (
            str(max(1, int(call.timeout * 1000))),
            str(max(1, int(spec.lock_timeout.total_seconds() * 1000))),
        )
        local = not (call.mitigation and spec.autocommit)
        if local:
            await conn.execute("BEGIN" if call.mitigation else "BEGIN READ ONLY")
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, %s), set_config('lock_timeout', %s, %s)",
            (timeouts[0], local, timeouts[1], local),
        )
        if spec.requires_extension:
            found = await conn.execute(
                "SELECT 1 FROM pg_extension WHERE extname = %s", (spec.requires_extension,)
            )
            if await found.fetchone() is None:
                if local:
                    await conn.execute("ROLLBACK")
                message = (
                    f"{spec.requires_extension} is not installed in this database: run "
                    f"CREATE EXTENSION {spec.requires_extension} (it must also be in "
                    "shared_preload_libraries)"
                )
                return Outcome(summary=message, verdict=Verdict(Grade.INFO, message))
        cursor = await conn.execute(query, values)
        outcome = Outcome()
        if cursor.description is not None:
            outcome.columns = [c.name for c in cursor.description]
            fetched = await cursor.fetchmany(call.max_rows)
            outcome.rows = [[jsonable(v) for v in row] for row in fetched]
            total = cursor.rowcount if cursor.rowcount >= 0 else len(fetched)
            outcome.total_rows = total
            outcome.summary = f"{total} row{'s' if total != 1 else ''}"
            if total > len(fetched):
                outcome.summary += f" (first {len(fetched)} shown)"
        else:
            outcome.summary = cursor.statusmessage or "done"
        if local:
            await conn.execute("COMMIT" if call.mitigation else "ROLLBACK")
        return outcome


async def _cancel(conn: psycopg.AsyncConnection[Any]) -> None:
    """Ask the server to cancel whatever the connection is running (a new connection)."""
    if conn.closed:
        return
    try:
        await conn.cancel_safe(timeout=3.0)
    except (psycopg.Error, OSError) as error:
        log.warning("could not cancel backend %s: %s", conn.info.backend_pid, error)


def _explain(error: psycopg.Error, call: StepCall, spec: PostgresSpec, *, connected: bool) -> str:
    where = f"postgres target {call.target_name!r}"
    text = (error.diag.message_primary or str(error)).strip().splitlines()
    message = text[0] if text else type(error).__name__
    if not connected:
        return f"cannot connect to {where}: {message}"
    if isinstance(error, pg_errors.QueryCanceled):
        if "statement timeout" in message:
            took = format_duration(timedelta(seconds=call.timeout))
            return f"timed out after {took}; the server cancelled the statement"
        return f"the statement was cancelled: {message}"
    if isinstance(error, pg_errors.LockNotAvailable):
        took = format_duration(spec.lock_timeout)
        return f"gave up waiting for a lock after {took} (lock_timeout): {message}"
    if isinstance(error, pg_errors.InsufficientPrivilege):
        return f"permission denied on {where}: {message}"
    if isinstance(error, pg_errors.ReadOnlySqlTransaction):
        return f"diagnostics are read-only, and this statement writes: {message}"
    if isinstance(error, psycopg.OperationalError):
        return f"lost the connection to {where}: {message}"
    code = f" ({error.sqlstate})" if error.sqlstate else ""
    return f"{where} answered an error{code}: {message}"
