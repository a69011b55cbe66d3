"""The one alert shape every sender's payload is normalised into.

A parser (``bot.intake.alerts.<source>.parse``) turns the raw body of one webhook
delivery into a :class:`Delivery`: zero or more :class:`NormalizedAlert` plus
what the delivery says about itself (its group, whether alerts were cut off,
whether it is only a ping).  Intake decides what the alerts mean for
incidents; parsers only read.

Identities have a bounded length, whatever the sender wrote (PagerDuty allows a
255-character ``dedup_key``, a long route makes a long ``groupKey``): a longer
``fingerprint`` or ``group_key`` keeps its start and ends with the SHA-256 of the whole
(:func:`fit_key`), so it stays one identity; a longer ``severity_hint`` is cut.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINGERPRINT_MAX = 200
GROUP_KEY_MAX = 500
SEVERITY_HINT_MAX = 40


def fit_key(key: str, limit: int) -> str:
    """``key`` if it has at most ``limit`` characters, else its start, ``#`` and its SHA-256.

    Two keys that differ anywhere stay different; the same key always fits the same way.
    """
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[: limit - len(digest) - 1]}#{digest}"


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

    def __post_init__(self) -> None:
        # Set only what is too long: every alert of a storm passes here.
        if len(self.fingerprint) > FINGERPRINT_MAX:
            object.__setattr__(self, "fingerprint", fit_key(self.fingerprint, FINGERPRINT_MAX))
        if self.group_key is not None and len(self.group_key) > GROUP_KEY_MAX:
            object.__setattr__(self, "group_key", fit_key(self.group_key, GROUP_KEY_MAX))
        if self.severity_hint is not None and len(self.severity_hint) > SEVERITY_HINT_MAX:
            object.__setattr__(self, "severity_hint", self.severity_hint[:SEVERITY_HINT_MAX])

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
    #: The body exactly as it arrived, kept for the intake journal (empty when built in code).
    body: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.group_key is not None and len(self.group_key) > GROUP_KEY_MAX:
            object.__setattr__(self, "group_key", fit_key(self.group_key, GROUP_KEY_MAX))

    def arrived_as(self, body: bytes) -> Delivery:
        """This delivery, fresh from its parser, holding the bytes it was parsed from.

        Set in place (a parser's new object, not seen by anyone yet): ``dataclasses.replace``
        would build and check every field again, per request.
        """
        object.__setattr__(self, "body", body)
        return self
