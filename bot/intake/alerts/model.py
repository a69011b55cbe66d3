"""The one alert shape every sender's payload is normalised into.

A parser (``bot.intake.alerts.<source>.parse``) turns the raw body of one webhook
delivery into a :class:`Delivery`: zero or more :class:`NormalizedAlert` plus
what the delivery says about itself (its group, whether alerts were cut off,
whether it is only a ping).  Intake decides what the alerts mean for
incidents; parsers only read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class NormalizedAlert:
    """One alert as every source describes it.

    ``fingerprint`` is the sender's own identity of the alert when it has one,
    else a stable hash of the sorted labels (see ``bot.intake.alerts.fingerprint``).
    ``group_key`` is the sender's group (Alertmanager/Grafana ``groupKey``),
    or ``None`` when the sender has no notion of groups and intake must derive
    one from configured labels.
    """

    source: str
    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    summary: str
    description: str = ""
    group_key: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    links: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    severity_hint: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The alert's name (``alertname`` label), else its summary."""
        return self.labels.get("alertname") or self.summary


@dataclass(frozen=True, slots=True)
class Delivery:
    """Everything one webhook body said."""

    source: str
    alerts: tuple[NormalizedAlert, ...]
    group_key: str | None = None
    status: AlertStatus | None = None
    delivery_id: str | None = None
    truncated_alerts: int = 0
    is_ping: bool = False
    receiver: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
