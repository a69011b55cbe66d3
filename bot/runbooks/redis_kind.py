"""The ``redis`` kind: an allow-list of commands, with writes only as declared mitigations.

A step's ``command`` is one of the commands below; ``{name}`` as a whole word is a declared
parameter, sent as one argument (Redis arguments are never parsed, so nothing can be
injected). Anything else — ``KEYS *``, ``CONFIG SET requirepass``, ``FLUSHALL``, ``EVAL`` —
is rejected when the runbook is loaded.

Read (diagnostics and mitigations)::

    PING | INFO [section] | CLIENT LIST | SLOWLOG GET [count] | SLOWLOG LEN | DBSIZE
    MEMORY STATS | LATENCY LATEST | CONFIG GET <key of CONFIG_GET_KEYS>

Write (mitigations only)::

    FLUSHDB [ASYNC|SYNC] | CLIENT KILL ID <id> | SLOWLOG RESET
    CONFIG SET <key of CONFIG_SET_KEYS> <value>

``INFO`` adds computed values for thresholds: ``hit_rate_pct`` (keyspace hits over hits and
misses), ``used_memory_pct`` (of ``maxmemory``, when set) and ``clients_pct`` (of
``maxclients``). ``FLUSHALL`` is left out on purpose: it empties every database of the
server, not only the target's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, field_validator
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeout,
)

from bot.runbooks.kinds import Outcome, Problem, StepCall, StepFailed, jsonable
from bot.runbooks.params import Param, ParamValue, format_duration
from bot.runbooks.targets import RedisTarget, TargetType, TargetUnavailable

INFO_SECTIONS = frozenset(
    {
        "server",
        "clients",
        "memory",
        "persistence",
        "stats",
        "replication",
        "cpu",
        "commandstats",
        "latencystats",
        "errorstats",
        "keyspace",
        "default",
        "all",
    }
)
CONFIG_GET_KEYS = frozenset(
    {
        "maxmemory",
        "maxmemory-policy",
        "maxclients",
        "timeout",
        "slowlog-log-slower-than",
        "slowlog-max-len",
        "latency-monitor-threshold",
        "save",
        "appendonly",
        "databases",
        "hz",
        "lazyfree-lazy-user-flush",
        "tcp-keepalive",
    }
)
CONFIG_SET_KEYS = frozenset(
    {
        "maxmemory",
        "maxmemory-policy",
        "maxclients",
        "timeout",
        "slowlog-log-slower-than",
        "latency-monitor-threshold",
    }
)

Client = aioredis.Redis
Handler = Callable[[Client, list[Any]], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument slot: a fixed choice of words, or an int / text within limits."""

    what: str
    choices: frozenset[str] | None = None
    integer: bool = False
    low: int = 0
    high: int = 2**63 - 1

    def check(self, value: object) -> object:
        if self.choices is not None:
            if str(value).lower() not in self.choices:
                raise ValueError(f"{value!r} is not an allowed {self.what}")
            return str(value).lower()
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"{value!r} is not a whole number")
            number = int(value)
            if not self.low <= number <= self.high:
                raise ValueError(f"{self.what} must be {self.low}–{self.high}")
            return number
        text = str(value)
        if not 0 < len(text) <= 200:
            raise ValueError(f"{self.what} must be 1–200 characters")
        return text


@dataclass(frozen=True, slots=True)
class Command:
    words: tuple[str, ...]
    args: tuple[Arg, ...]
    write: bool
    handler: Handler


async def _ping(client: Client, _: list[Any]) -> Outcome:
    start = time.perf_counter()
    await client.ping()
    took = round((time.perf_counter() - start) * 1000, 2)
    return Outcome(["reply", "ping_ms"], [["PONG", took]], {"ping_ms": took}, f"PONG in {took} ms")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = jsonable(value)
    return out


def _pct(part: Any, whole: Any) -> float | None:
    if isinstance(part, int | float) and isinstance(whole, int | float) and whole > 0:
        return round(100.0 * part / whole, 2)
    return None


async def _info(client: Client, args: list[Any]) -> Outcome:
    info = _flatten(await client.info(*args))
    values: dict[str, Any] = {k: v for k, v in info.items() if isinstance(v, int | float)}
    hits, misses = info.get("keyspace_hits"), info.get("keyspace_misses")
    if isinstance(hits, int) and isinstance(misses, int):
        values["hit_rate_pct"] = _pct(hits, hits + misses)
    if "used_memory" in info:
        values["used_memory_pct"] = _pct(info.get("used_memory"), info.get("maxmemory"))
    if "connected_clients" in info:
        values["clients_pct"] = _pct(info.get("connected_clients"), info.get("maxclients"))
    derived = {k: v for k, v in values.items() if k.endswith("_pct")}
    rows = [[k, v] for k, v in derived.items()] + [[k, v] for k, v in info.items()]
    parts = []
    if values.get("hit_rate_pct") is not None:
        parts.append(f"hit rate {values['hit_rate_pct']}%")
    elif hits is not None:
        parts.append("no keyspace hits or misses yet")
    if "used_memory_human" in info:
        parts.append(f"memory {info['used_memory_human']}")
        if values.get("used_memory_pct") is not None:
            parts[-1] += f" ({values['used_memory_pct']}% of maxmemory)"
    if "connected_clients" in info:
        parts.append(f"{info['connected_clients']} clients")
    summary = ", ".join(parts) or f"{len(info)} fields"
    return Outcome(["field", "value"], rows, values, summary)


async def _client_list(client: Client, _: list[Any]) -> Outcome:
    clients = await client.client_list()
    columns = ["id", "addr", "name", "age", "idle", "db", "cmd", "flags"]
    rows = [[jsonable(c.get(k)) for k in columns] for c in clients]
    idle = [int(c.get("idle", 0)) for c in clients]
    values = {"clients": len(clients), "max_idle_s": max(idle, default=0)}
    return Outcome(columns, rows, values, f"{len(clients)} clients connected")


async def _slowlog_get(client: Client, args: list[Any]) -> Outcome:
    entries = await client.slowlog_get(*(args or [10]))
    rows = [
        [
            e.get("id"),
            e.get("start_time"),
            round(e.get("duration", 0) / 1000, 3),
            jsonable(e.get("command")),
        ]
        for e in entries
    ]
    slowest = max((r[2] for r in rows), default=0)
    values = {"slow_entries": len(rows), "max_duration_ms": slowest}
    return Outcome(
        ["id", "start_time", "duration_ms", "command"],
        rows,
        values,
        f"{len(rows)} slow commands (slowest {slowest} ms)",
    )


async def _slowlog_len(client: Client, _: list[Any]) -> Outcome:
    count = int(await client.slowlog_len())
    return Outcome(["entries"], [[count]], {"entries": count}, f"{count} entries in the slowlog")


async def _dbsize(client: Client, _: list[Any]) -> Outcome:
    keys = int(await client.dbsize())
    return Outcome(["keys"], [[keys]], {"keys": keys}, f"{keys} keys")


async def _memory_stats(client: Client, _: list[Any]) -> Outcome:
    stats = _flatten(await client.memory_stats())
    values = {k: v for k, v in stats.items() if isinstance(v, int | float)}
    rows = [[k, v] for k, v in stats.items()]
    total = stats.get("total.allocated")
    return Outcome(["field", "value"], rows, values, f"{total} bytes allocated")


async def _latency_latest(client: Client, _: list[Any]) -> Outcome:
    events = await client.execute_command("LATENCY LATEST")  # type: ignore[no-untyped-call]
    rows = [[jsonable(v) for v in list(e)[:4]] for e in events or []]
    worst = max((r[3] for r in rows if isinstance(r[3], int)), default=0)
    values = {"latency_events": len(rows), "max_latency_ms": worst}
    return Outcome(
        ["event", "timestamp", "latest_ms", "max_ms"],
        rows,
        values,
        f"{len(rows)} latency events (worst {worst} ms)",
    )


async def _config_get(client: Client, args: list[Any]) -> Outcome:
    found = {str(k): jsonable(v) for k, v in (await client.config_get(args[0])).items()}
    return Outcome(
        ["key", "value"],
        [[k, v] for k, v in found.items()],
        found,
        ", ".join(f"{k} = {v}" for k, v in found.items()),
    )


async def _flushdb(client: Client, args: list[Any]) -> Outcome:
    before = int(await client.dbsize())
    await client.flushdb(asynchronous=bool(args and args[0] == "async"))
    after = int(await client.dbsize())
    values = {"keys_before": before, "keys_after": after}
    return Outcome(
        ["keys_before", "keys_after"],
        [[before, after]],
        values,
        f"flushed the database: {before} keys before, {after} after",
    )


async def _client_kill(client: Client, args: list[Any]) -> Outcome:
    killed = int(await client.client_kill_filter(_id=args[0]))
    return Outcome(["killed"], [[killed]], {"killed": killed}, f"{killed} client(s) killed")


async def _slowlog_reset(client: Client, _: list[Any]) -> Outcome:
    await client.slowlog_reset()
    return Outcome(summary="slowlog reset")


async def _config_set(client: Client, args: list[Any]) -> Outcome:
    await client.config_set(args[0], args[1])
    return Outcome(["key", "value"], [[args[0], args[1]]], {}, f"{args[0]} set to {args[1]}")


_SECTION = Arg("INFO section", choices=INFO_SECTIONS)
COMMANDS: tuple[Command, ...] = (
    Command(("PING",), (), False, _ping),
    Command(("INFO",), (), False, _info),
    Command(("INFO",), (_SECTION,), False, _info),
    Command(("CLIENT", "LIST"), (), False, _client_list),
    Command(("SLOWLOG", "GET"), (), False, _slowlog_get),
    Command(
        ("SLOWLOG", "GET"), (Arg("count", integer=True, low=1, high=128),), False, _slowlog_get
    ),
    Command(("SLOWLOG", "LEN"), (), False, _slowlog_len),
    Command(("DBSIZE",), (), False, _dbsize),
    Command(("MEMORY", "STATS"), (), False, _memory_stats),
    Command(("LATENCY", "LATEST"), (), False, _latency_latest),
    Command(
        ("CONFIG", "GET"), (Arg("CONFIG GET key", choices=CONFIG_GET_KEYS),), False, _config_get
    ),
    Command(("FLUSHDB",), (), True, _flushdb),
    Command(
        ("FLUSHDB",), (Arg("FLUSHDB mode", choices=frozenset({"async", "sync"})),), True, _flushdb
    ),
    Command(("CLIENT", "KILL", "ID"), (Arg("client id", integer=True, low=1),), True, _client_kill),
    Command(("SLOWLOG", "RESET"), (), True, _slowlog_reset),
    Command(
        ("CONFIG", "SET"),
        (Arg("CONFIG SET key", choices=CONFIG_SET_KEYS), Arg("value")),
        True,
        _config_set,
    ),
)


def parse_command(text: str) -> tuple[Command, list[str]]:
    """The allowed command ``text`` is, and its argument words; ``ValueError`` otherwise."""
    words = text.split()
    for command in COMMANDS:
        size = len(command.words)
        if [w.upper() for w in words[:size]] == list(command.words) and len(words) == size + len(
            command.args
        ):
            return command, words[size:]
    readable = sorted({" ".join(c.words) for c in COMMANDS})
    raise ValueError(
        f"{text.strip()!r} is not in the Redis allow-list ({', '.join(readable)}; see the "
        "redis kind's documentation for the arguments each takes)"
    )


def _placeholder(word: str) -> str | None:
    if len(word) > 2 and word[0] == "{" and word[-1] == "}":
        return word[1:-1]
    return None


class RedisSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str

    @field_validator("command")
    @classmethod
    def _allowed(cls, value: str) -> str:
        parse_command(value)
        return value


class RedisKind:
    """Registered as ``redis``; targets come from ``runbooks.targets.redis``."""

    name = "redis"
    target_type: TargetType = "redis"
    spec_model = RedisSpec
    mitigation_only = False

    def check(
        self, spec: RedisSpec, params: Mapping[str, Param], *, mitigation: bool
    ) -> list[Problem]:
        command, words = parse_command(spec.command)
        out = []
        if command.write and not mitigation:
            out.append(
                Problem(
                    "command",
                    f"{' '.join(command.words)} writes: declare it as a "
                    "mitigation, with a preview and who is allowed",
                )
            )
        for arg, word in zip(command.args, words, strict=True):
            name = _placeholder(word)
            if name is None:
                try:
                    arg.check(word)
                except ValueError as error:
                    out.append(Problem("command", str(error)))
                continue
            param = params.get(name)
            if param is None:
                out.append(Problem("command", f"{{{name}}} names no declared parameter"))
            elif arg.integer and param.type != "int":
                out.append(Problem("command", f"{{{name}}} must be an int parameter"))
            elif arg.choices is not None and not (
                param.enum and all(str(v).lower() in arg.choices for v in param.enum)
            ):
                out.append(
                    Problem("command", f"{{{name}}} needs an enum within the allowed {arg.what}s")
                )
        return out

    async def run(self, call: StepCall) -> Outcome:
        spec: RedisSpec = call.spec
        target = call.target
        assert isinstance(target, RedisTarget)
        try:
            url = target.url()
        except TargetUnavailable as error:
            raise StepFailed(str(error)) from None
        command, words = parse_command(spec.command)
        if command.write and not call.mitigation:
            raise StepFailed(f"{' '.join(command.words)} runs only as a mitigation")
        args = [
            arg.check(_resolve(word, call.params))
            for arg, word in zip(command.args, words, strict=True)
        ]
        where = f"redis target {call.target_name!r}"
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=call.timeout,
            socket_connect_timeout=min(call.timeout, 5.0),
            retry=Retry(NoBackoff(), 0),
            client_name=f"warroom-{call.runbook}-{call.step.id}"[:60],
        )
        try:
            async with asyncio.timeout(call.timeout):
                return await command.handler(client, args)
        except TimeoutError:
            took = format_duration(timedelta(seconds=call.timeout))
            raise StepFailed(f"{where} did not answer within {took}") from None
        except RedisTimeout:
            raise StepFailed(f"{where} timed out") from None
        except (AuthenticationError, NoPermissionError) as error:
            raise StepFailed(f"permission denied on {where}: {error}") from None
        except RedisConnectionError as error:
            raise StepFailed(f"cannot reach {where}: {error}") from None
        except ResponseError as error:
            raise StepFailed(f"{where} answered an error: {error}") from None
        except (RedisError, OSError) as error:
            raise StepFailed(f"{where}: {error}") from None
        finally:
            await client.aclose()


def _resolve(word: str, params: Mapping[str, ParamValue]) -> object:
    name = _placeholder(word)
    return word if name is None else params[name]
