"""The stored records: incidents, their timeline, alerts and follow-ups.

Times are timezone-aware UTC on both SQLite and Postgres (:class:`UTCDateTime`).
JSON columns are replaced, never mutated in place, so changes are always saved.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: warroom stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
    return Field(default_factory=default, sa_column=sa.Column(JSONType, nullable=False))


class Status(enum.StrEnum):
    """An incident's lifecycle, in the order it usually runs."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not Status.RESOLVED


class SeveritySource(enum.StrEnum):
    PERSON = "person"
    RULE = "rule"
    DEFAULT = "default"


class Incident(SQLModel, table=True):
    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=24, unique=True, index=True)
    number: int = Field(unique=True)
    title: str = Field(max_length=200)
    summary: str = ""
    impact: str = ""
    service: str | None = Field(default=None, max_length=100, index=True)
    severity: str = Field(max_length=16, index=True)
    severity_reason: str = ""
    severity_source: str = Field(default=SeveritySource.DEFAULT.value, max_length=16)
    status: str = Field(default=Status.INVESTIGATING.value, max_length=16, index=True)
    roles: dict[str, str] = _json()
    channel_id: str | None = Field(default=None, max_length=32, index=True)
    channel_name: str | None = Field(default=None, max_length=80)
    card_ts: str | None = Field(default=None, max_length=32)
    root_cause: str = ""
    resolution: str = ""
    created_by: str = Field(max_length=100)
    acknowledged_by: str | None = Field(default=None, max_length=100)
    detected_at: datetime | None = _when()
    declared_at: datetime = _when(nullable=False, index=True)
    acknowledged_at: datetime | None = _when()
    mitigated_at: datetime | None = _when()
    resolved_at: datetime | None = _when()
    updated_at: datetime = _when(nullable=False)
    version: int = 1

    @property
    def state(self) -> Status:
        return Status(self.status)

    @property
    def commander(self) -> str | None:
        return self.roles.get("commander")


class TimelineEvent(SQLModel, table=True):
    __tablename__ = "timeline_event"
    __table_args__ = (sa.Index("ix_timeline_incident_at", "incident_id", "at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False)
    )
    at: datetime = _when(nullable=False)
    kind: str = Field(max_length=40)
    actor: str = Field(max_length=100)
    text: str
    data: dict[str, Any] = _json()


class Alert(SQLModel, table=True):
    """One alert of one incident: repeats update it (count, last seen), never add rows."""

    __tablename__ = "alert"
    __table_args__ = (
        sa.Index("ix_alert_source_fingerprint", "source", "fingerprint"),
        sa.UniqueConstraint("incident_id", "endpoint", "fingerprint", name="uq_alert_identity"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("incident.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    source: str = Field(max_length=40)
    endpoint: str = Field(default="", max_length=40, sa_column_kwargs={"server_default": ""})
    fingerprint: str = Field(max_length=200)
    group_key: str | None = Field(default=None, max_length=500, index=True)
    status: str = Field(max_length=16)
    labels: dict[str, str] = _json()
    annotations: dict[str, str] = _json()
    summary: str = ""
    description: str = ""
    links: dict[str, str] = _json()
    values: dict[str, float] = _json()
    severity_hint: str | None = Field(default=None, max_length=40)
    starts_at: datetime | None = _when()
    ends_at: datetime | None = _when()
    first_seen: datetime = _when(nullable=False)
    last_seen: datetime = _when(nullable=False)
    count: int = 1
    raw: dict[str, Any] = _json()


class FollowUp(SQLModel, table=True):
    __tablename__ = "follow_up"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    text: str
    owner: str | None = Field(default=None, max_length=100)
    status: str = Field(default="open", max_length=16)
    url: str | None = None
    created_by: str = Field(max_length=100)
    created_at: datetime = _when(nullable=False)
    done_at: datetime | None = _when()


class Counter(SQLModel, table=True):
    """Gap-free sequences (incident numbers), incremented under a row lock."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=40)
    value: int = 0


class AlertGroup(SQLModel, table=True):
    """An alert group (Alertmanager's groupKey, or configured labels) and its incident.

    The row is locked while a delivery for the group is processed, so a storm of
    concurrent deliveries for one new group opens exactly one incident.
    """

    __tablename__ = "alert_group"
    __table_args__ = (sa.UniqueConstraint("endpoint", "group_hash", name="uq_alert_group"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=40)
    group_hash: str = Field(max_length=64)
    group_key: str
    incident_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("incident.id", ondelete="SET NULL"), nullable=True),
    )
    created_at: datetime = _when(nullable=False)
    last_seen: datetime = _when(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    """One accepted webhook body: a sender's retry of it is recognised and counted once."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (sa.UniqueConstraint("endpoint", "delivery_key", name="uq_webhook_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=40)
    delivery_key: str = Field(max_length=200)
    received_at: datetime = _when(nullable=False, index=True)
    alerts: int = 0


class IntakeEntry(SQLModel, table=True):
    """One accepted webhook body, durable before it is folded (:mod:`bot.intake.journal`).

    The sender is answered once this row is committed; the folder turns it into incidents,
    alerts and timeline events and deletes it in the same transaction.
    """

    __tablename__ = "intake_entry"
    __table_args__ = (sa.UniqueConstraint("endpoint", "delivery_key", name="uq_intake_entry"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=40)
    source: str = Field(max_length=40)
    delivery_key: str = Field(max_length=200)
    received_at: datetime = _when(nullable=False)
    alerts: int = 0
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    #: Failed folds of this entry; past :data:`bot.intake.journal.MAX_ATTEMPTS` it is left
    #: for a person (``error`` says why) and the folder goes on without it.
    attempts: int = 0
    error: str | None = None


class OutboxRow(SQLModel, table=True):
    """One thing to tell the chat, written in the transaction of the change that caused it.

    Rows of one ``lane`` (an incident's channel, the broadcast channel) are delivered in id
    order; a worker claims a row with a lease, so a crashed worker's row is retried, and a
    retry whose first attempt may have gone through looks for its ``marker`` before sending.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
        sa.Index("ix_outbox_lane", "lane", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    lane: str = Field(max_length=80)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = _json()
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    uncertain: bool = False
    next_attempt_at: datetime = _when(nullable=False)
    claimed_until: datetime | None = _when()
    claimed_by: str | None = Field(default=None, max_length=80)
    last_error: str = ""
    result: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False)
    done_at: datetime | None = _when()


class TranscriptEntry(SQLModel, table=True):
    """What would have been posted to Slack, kept when Slack is not connected (local mode)."""

    __tablename__ = "transcript"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    at: datetime = _when(nullable=False)
    channel: str = Field(max_length=80)
    action: str = Field(max_length=40)
    ref: str = Field(default="", max_length=40)
    text: str


class StepRun(SQLModel, table=True):
    """One runbook step run, requested, approved or refused: the audit of what was done.

    ``kind`` is ``diagnostic`` or ``mitigation``; ``step_kind`` the kind that ran it
    (``postgres``, ``redis``…). ``status`` moves pending → approved → running → done or
    failed, or ends refused; ``output`` holds the redacted columns and rows, ``digest``
    their SHA-256.
    """

    __tablename__ = "step_run"
    __table_args__ = (sa.Index("ix_step_run_incident", "incident_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False)
    )
    runbook: str = Field(max_length=80)
    step: str = Field(max_length=80)
    kind: str = Field(max_length=16)
    step_kind: str = Field(max_length=40)
    target: str = Field(max_length=80)
    params: dict[str, Any] = _json()
    status: str = Field(max_length=16)
    requested_by: str = Field(max_length=100)
    approved_by: list[str] = _json(list)
    confirmed_by: str | None = Field(default=None, max_length=100)
    requested_at: datetime = _when(nullable=False)
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    duration_ms: int | None = None
    grade: str | None = Field(default=None, max_length=16)
    summary: str = ""
    output: dict[str, Any] = _json()
    digest: str | None = Field(default=None, max_length=64)


class ReplayKey(SQLModel, table=True):
    """A request already acted on (a signature, an event id…), remembered until ``expires_at``.

    A second request with the same ``scope`` and ``key`` is a replay or a retry: it is answered
    and not acted on. Expired rows are purged, so the table stays small.
    """

    __tablename__ = "replay_key"
    __table_args__ = (sa.UniqueConstraint("scope", "key", name="uq_replay_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=40)
    key: str = Field(max_length=200)
    seen_at: datetime = _when(nullable=False)
    expires_at: datetime = _when(nullable=False, index=True)


class WebSession(SQLModel, table=True):
    """A manager's login to the pages: the cookie holds a secret whose SHA-256 is ``id``.

    Logging out revokes it here, so a copied cookie stops working at once; ``csrf`` is the
    token every form of the session must send back.
    """

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    csrf: str = Field(max_length=64)
    client: str = Field(default="", max_length=64)
    created_at: datetime = _when(nullable=False)
    expires_at: datetime = _when(nullable=False, index=True)
    revoked_at: datetime | None = _when()


class ExternalRecord(SQLModel, table=True):
    """Something an integration made outside warroom for an incident, and what it last said.

    A status page incident, a ticket filed for a follow-up, an exported post-mortem page: one
    row per ``(incident_id, ref)``, where ``ref`` names the thing within the incident (e.g.
    ``statuspage:public``, ``ticket:jira:42`` for follow-up 42, ``export:confluence``), so a
    retry or a re-export finds the row and updates the same thing instead of making a second.
    ``external_id`` and ``url`` are the vendor's; ``state`` its last known state and ``done``
    whether that state counts as finished; ``version`` what a conditional read sends back (an
    ETag, an ``updated`` time, a page version).
    """

    __tablename__ = "external_record"
    __table_args__ = (sa.UniqueConstraint("incident_id", "ref", name="uq_external_record"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("incident.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    ref: str = Field(max_length=120)
    kind: str = Field(max_length=16)
    target: str = Field(max_length=80)
    vendor: str = Field(max_length=40)
    follow_up_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.ForeignKey("follow_up.id", ondelete="SET NULL"), nullable=True),
    )
    external_id: str = Field(default="", max_length=200)
    url: str | None = None
    state: str = Field(default="", max_length=40)
    done: bool = False
    version: str = Field(default="", max_length=200)
    data: dict[str, Any] = _json()
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)
    checked_at: datetime | None = _when()
