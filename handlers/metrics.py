"""``GET /metrics``: the bot's own metrics, in Prometheus text format.

Two kinds of figures:

- **From the database, at scrape time** (the same on every replica, so aggregate them with
  ``max``, not ``sum``): the outbox backlog, open incidents by severity, runbook step runs,
  and the times to acknowledge and resolve. A custom collector reads them in one read-only
  transaction per scrape; if the database does not answer, ``warroom_database_up`` is 0 and
  they are left out.
- **Per process, where they happen** (sum them across replicas): alerts received, webhook
  latency, alerts per delivery (recorded by :mod:`handlers.webhooks` and the webhook route)
  and Slack Web API calls by method and outcome (recorded by :mod:`handlers.slack.chat`).

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the global one),
so several apps in one process (the tests) do not share counters. With ``web.token`` set,
the endpoint wants ``Authorization: Bearer <token>`` (or a page session); without it, it is
open, like the webhooks, for a server that listens on ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.core import Core
from bot.delivery.outbox import FAILED, PENDING
from bot.errors import StorageUnavailable
from bot.intake.fold import IntakeResult
from bot.store.models import Incident, OutboxRow, Status, StepRun
from handlers import web

log = logging.getLogger(__name__)

#: A scrape gives up on the database after this long (Prometheus' default timeout is 10 s).
READ_TIMEOUT_S = 5.0

WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_MIN = 60.0
_HOUR = 3600.0
TIME_TO_ACK_BUCKETS = (_MIN, 5 * _MIN, 10 * _MIN, 15 * _MIN, 30 * _MIN, _HOUR, 2 * _HOUR,
                       4 * _HOUR, 8 * _HOUR, 24 * _HOUR)  # fmt: skip
TIME_TO_RESOLVE_BUCKETS = (15 * _MIN, 30 * _MIN, _HOUR, 2 * _HOUR, 4 * _HOUR, 8 * _HOUR,
                           24 * _HOUR, 48 * _HOUR, 7 * 24 * _HOUR)  # fmt: skip


class Metrics:
    """One app's registry: the per-process instruments, and the database collector."""

    def __init__(self, core: Core | None = None) -> None:
        self.registry = CollectorRegistry()
        self.alerts = Counter(
            "warroom_alerts_received",
            "Alerts received by webhook, by source type and result "
            "(accepted, ignored, duplicate, refused: 503, the sender retries).",
            ["source", "result"],
            registry=self.registry,
        )
        self.requests = Histogram(
            "warroom_webhook_request_seconds",
            "Time to answer a webhook request, by source type and HTTP status code.",
            ["source", "code"],
            buckets=WEBHOOK_BUCKETS,
            registry=self.registry,
        )
        self.batches = Histogram(
            "warroom_intake_batch_size",
            "Alerts per accepted webhook delivery, by source type.",
            ["source"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.slack = Counter(
            "warroom_slack_calls",
            "Slack Web API calls by method and outcome: ok, 429, an HTTP 5xx code, Slack's "
            "error code, timeout or connection_error.",
            ["method", "status"],
            registry=self.registry,
        )
        self.unfolded = Gauge(
            "warroom_intake_unfolded",
            "Deliveries this process journaled (answered 2xx) and has not folded into "
            "incidents yet: the fold's lag behind a storm.",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.stored: StoredFigures | None = None
        if core is not None:
            self.stored = StoredFigures(core)
            self.registry.register(self.stored)

    # -- recorded where they happen -----------------------------------------

    def received(self, source: str, result: str, alerts: int) -> None:
        if alerts:
            self._child(self.alerts, source, result).inc(alerts)

    def intake(self, source: str, alerts: int, result: IntakeResult) -> None:
        """A delivery intake processed: its alerts, and its size if it was accepted."""
        if result.duplicate:
            self.received(source, "duplicate", alerts)
            return
        if result.ping:
            return
        self.received(source, "accepted", result.alerts)
        self.received(source, "ignored", result.ignored)
        self._child(self.batches, source).observe(alerts)

    def webhook(self, source: str, code: int, seconds: float) -> None:
        self._child(self.requests, source, str(code)).observe(seconds)

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once (``labels`` validates and locks)."""
        key = (id(metric), values)  # the metrics live as long as this object
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def slack_call(self, method: str, status: str) -> None:
        self.slack.labels(method, status).inc()

    # -- the scrape ------------------------------------------------------------

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry rendered for a scraper that sent ``accept``: body and content type."""
        if self.stored is not None:
            await self.stored.refresh()
        encoder, content_type = choose_encoder(accept)
        # No await between the refresh and the rendering: the snapshot is this scrape's.
        return encoder(self.registry), content_type


@dataclass
class Snapshot:
    """What one scrape read from the database."""

    severities: Sequence[str]
    outbox: dict[str, int] = field(default_factory=dict)
    oldest_pending_s: float = 0.0
    open_by_severity: dict[str, int] = field(default_factory=dict)
    step_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    time_to_ack: dict[str, list[float]] = field(default_factory=dict)
    time_to_resolve: dict[str, list[float]] = field(default_factory=dict)


class StoredFigures:
    """A collector of figures read from the outbox, incident and step_run tables."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.snapshot: Snapshot | None = None

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                self.snapshot = await self._read()
        except (StorageUnavailable, TimeoutError) as error:
            log.warning("metrics: database figures left out: %s", error or "timed out")
            self.snapshot = None

    async def _read(self) -> Snapshot:
        now = self.core.clock.now()
        snap = Snapshot(severities=self.core.incidents.scheme.names)
        async with self.core.db.transaction(read_only=True) as session:
            outbox = await session.exec(
                select(OutboxRow.status, sa.func.count(), sa.func.min(OutboxRow.created_at))
                .where(col(OutboxRow.status).in_([PENDING, FAILED]))
                .group_by(col(OutboxRow.status))
            )
            for status, count, _ in outbox.all():
                snap.outbox[status] = count
            # Rows scheduled for later (an escalation due in 15 minutes) are not late: only
            # rows already due count towards the age of the oldest.
            oldest = (
                await session.exec(
                    select(sa.func.min(OutboxRow.created_at)).where(
                        col(OutboxRow.status) == PENDING, col(OutboxRow.next_attempt_at) <= now
                    )
                )
            ).one()
            if oldest is not None:
                snap.oldest_pending_s = _seconds(_aware(oldest), now)
            opened = await session.exec(
                select(Incident.severity, sa.func.count())
                .where(col(Incident.status) != Status.RESOLVED.value)
                .group_by(col(Incident.severity))
            )
            snap.open_by_severity = {severity: count for severity, count in opened.all()}
            runs = await session.exec(
                select(StepRun.kind, StepRun.grade, sa.func.count()).group_by(
                    col(StepRun.kind), col(StepRun.grade)
                )
            )
            for kind, grade, count in runs.all():
                snap.step_runs[(kind, grade or "none")] = count
            times = await session.exec(
                select(
                    Incident.severity,
                    sa.func.coalesce(Incident.detected_at, Incident.declared_at),
                    Incident.acknowledged_at,
                    Incident.resolved_at,
                ).where(
                    col(Incident.acknowledged_at).is_not(None)
                    | col(Incident.resolved_at).is_not(None)
                )
            )
            for severity, started, acked, resolved in times.all():
                start = _aware(started)  # detection, else declaration: as the report page says
                if acked is not None:
                    snap.time_to_ack.setdefault(severity, []).append(_seconds(start, acked))
                if resolved is not None:
                    snap.time_to_resolve.setdefault(severity, []).append(_seconds(start, resolved))
        return snap

    def describe(self) -> Iterable[Metric]:
        return [self._up(True), *self._families(Snapshot(severities=()))]

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        yield self._up(snap is not None)
        if snap is not None:
            yield from self._families(snap)

    def _up(self, up: bool) -> Metric:
        family = GaugeMetricFamily(
            "warroom_database_up", "1 if this scrape could read the database, else 0."
        )
        family.add_metric([], 1 if up else 0)
        return family

    def _families(self, snap: Snapshot) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "warroom_outbox_pending",
            "Outbox rows not delivered to the chat yet (all replicas).",
            value=snap.outbox.get(PENDING, 0),
        )
        yield GaugeMetricFamily(
            "warroom_outbox_failed",
            "Outbox rows given up on (shown by `warroom incident show`).",
            value=snap.outbox.get(FAILED, 0),
        )
        yield GaugeMetricFamily(
            "warroom_outbox_oldest_seconds",
            "Age of the oldest outbox row due and not delivered; 0 when none is.",
            value=snap.oldest_pending_s,
        )
        opened = GaugeMetricFamily(
            "warroom_incidents_open", "Incidents not resolved, by severity.", labels=["severity"]
        )
        counts = {name: 0 for name in snap.severities} | snap.open_by_severity
        for severity, count in counts.items():
            opened.add_metric([severity], count)
        yield opened
        runs = CounterMetricFamily(
            "warroom_step_runs",
            "Runbook step runs stored, by kind (diagnostic, mitigation) and grade "
            "(none: not run, e.g. refused, cancelled or awaiting confirmation).",
            labels=["kind", "grade"],
        )
        for (kind, grade), count in sorted(snap.step_runs.items()):
            runs.add_metric([kind, grade], count)
        yield runs
        yield _histogram(
            "warroom_incident_time_to_ack_seconds",
            "From detection (else declaration) to acknowledgement, by severity.",
            TIME_TO_ACK_BUCKETS,
            snap.time_to_ack,
        )
        yield _histogram(
            "warroom_incident_time_to_resolve_seconds",
            "From detection (else declaration) to resolution, of incidents resolved now.",
            TIME_TO_RESOLVE_BUCKETS,
            snap.time_to_resolve,
        )


def _histogram(
    name: str, documentation: str, bounds: Sequence[float], values: dict[str, list[float]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["severity"])
    for severity, seen in sorted(values.items()):
        buckets: list[tuple[str, float]] = [
            (str(float(bound)), sum(1 for v in seen if v <= bound)) for bound in bounds
        ]
        buckets.append(("+Inf", len(seen)))
        family.add_metric([severity], buckets, sum(seen))
    return family


def _aware(value: datetime) -> datetime:
    """SQLite gives back naive datetimes (in UTC) where the column type is not applied."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


async def _allowed(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    return await web._logged_in(request, token)  # a manager logged in to the pages


async def metrics_endpoint(request: Request) -> Response:
    core: Core = request.app.state.core
    secret = core.settings.web.token
    if secret is not None and not await _allowed(request, secret.get_secret_value()):
        return PlainTextResponse(
            "unauthorized: send Authorization: Bearer <WARROOM_WEB__TOKEN>\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="warroom"'},
        )
    metrics: Metrics = request.app.state.metrics
    body, content_type = await metrics.exposition(request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


ROUTES = [Route("/metrics", metrics_endpoint)]
