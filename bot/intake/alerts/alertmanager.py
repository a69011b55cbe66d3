"""Prometheus Alertmanager webhook bodies (``version: "4"``).

One delivery is one notification for one alert group::

    {"version": "4", "groupKey": "{}:{alertname=\\"X\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "web\\\\.hook", "externalURL": "...",
     "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "alerts": [{"status", "labels", "annotations", "startsAt", "endsAt",
                 "generatorURL", "fingerprint"}]}

Each alert keeps its own status and fingerprint (Alertmanager older than
0.19 sends none: the sorted labels are hashed instead).  ``endsAt`` of a firing
alert is Go's zero time, read as ``None``.  The receiver name arrives in
``regexp.QuoteMeta`` form and is un-escaped.  ``Delivery.extra`` carries
``group_labels``, ``common_labels``, ``common_annotations`` and
``external_url`` (plus ``notification_reason`` from 0.32 on).

Grafana's unified alerting sends the same shape with more fields; its parser
(``bot.intake.alerts.grafana``) reuses :func:`parse_group` and :func:`read_alert`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.intake.alerts.errors import (
    ROOT,
    PayloadError,
    child,
    expect_array,
    expect_object,
    opt_int,
    opt_str,
    show,
    str_map,
)
from bot.intake.alerts.fingerprint import label_fingerprint, parse_time
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert

SOURCE = "alertmanager"
WEBHOOK_VERSION = "4"

# Annotations whose value is a link, and the ``links`` key each becomes.
ANNOTATION_LINKS: dict[str, str] = {
    "runbook_url": "runbook",
    "dashboard_url": "dashboard",
    "panel_url": "panel",
    "silence_url": "silence",
}

_QUOTED_META = re.compile(r"\\(.)", re.DOTALL)


@dataclass(slots=True)
class AlertDraft:
    """One alert read from the body, before it is frozen into a ``NormalizedAlert``."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    summary: str
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    links: dict[str, str]
    severity_hint: str | None
    raw: dict[str, Any]
    values: dict[str, float] = field(default_factory=dict)

    def build(self, source: str, group_key: str | None) -> NormalizedAlert:
        return NormalizedAlert(
            source=source,
            fingerprint=self.fingerprint,
            status=self.status,
            labels=self.labels,
            annotations=self.annotations,
            summary=self.summary,
            description=self.description,
            group_key=group_key,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            links=self.links,
            values=self.values,
            severity_hint=self.severity_hint,
            raw=self.raw,
        )


AlertReader = Callable[[object, str], AlertDraft]
EnvelopeReader = Callable[[dict[str, object]], dict[str, Any]]


def parse(body: object) -> Delivery:
    """Read one Alertmanager webhook body."""
    return parse_group(body, source=SOURCE, version=WEBHOOK_VERSION)


def parse_group(
    body: object,
    *,
    source: str,
    version: str,
    read_one: AlertReader | None = None,
    read_envelope: EnvelopeReader | None = None,
) -> Delivery:
    """Read an Alertmanager-shaped group notification.

    ``read_one`` reads one element of ``alerts`` (default :func:`read_alert`);
    ``read_envelope`` adds sender-specific keys to ``Delivery.extra``.
    """
    obj = expect_object(body, ROOT)
    _check_version(obj, source, version)
    reader = read_one or read_alert

    group_key = opt_str(obj, "groupKey", ROOT)
    receiver = opt_str(obj, "receiver", ROOT)
    truncated = opt_int(obj, "truncatedAlerts", ROOT) or 0
    if truncated < 0:
        raise PayloadError("truncatedAlerts", f"must not be negative: {truncated}")
    status_value = obj.get("status")
    body_status = None if status_value is None else _status(status_value, "status")

    alerts_value = obj.get("alerts")
    if alerts_value is None and "alerts" not in obj:
        raise PayloadError("alerts", "required field is missing")
    alert_items = [] if alerts_value is None else expect_array(alerts_value, "alerts")
    alerts = tuple(
        reader(item, child("alerts", index)).build(source, group_key)
        for index, item in enumerate(alert_items)
    )

    extra: dict[str, Any] = {
        "group_labels": str_map(obj, "groupLabels", ROOT),
        "common_labels": str_map(obj, "commonLabels", ROOT),
        "common_annotations": str_map(obj, "commonAnnotations", ROOT),
    }
    external_url = opt_str(obj, "externalURL", ROOT)
    if external_url:
        extra["external_url"] = external_url
    reason = opt_str(obj, "notification_reason", ROOT)
    if reason:
        extra["notification_reason"] = reason
    if read_envelope is not None:
        extra.update(read_envelope(obj))

    return Delivery(
        source=source,
        alerts=alerts,
        group_key=group_key,
        status=_group_status(alerts, body_status),
        truncated_alerts=truncated,
        receiver=unquote_meta(receiver) if receiver is not None else None,
        extra=extra,
    )


def read_alert(value: object, path: str) -> AlertDraft:
    """Read one element of ``alerts`` (the fields Alertmanager and Grafana share)."""
    obj = expect_object(value, path)
    status_path = child(path, "status")
    status_value = obj.get("status")
    if status_value is None:
        raise PayloadError(status_path, "required field is missing")
    status = _status(status_value, status_path)
    if obj.get("labels") is None:
        # Alertmanager and Grafana always send labels: an alert without them names nothing.
        raise PayloadError(child(path, "labels"), "required field is missing")
    labels = str_map(obj, "labels", path)
    annotations = str_map(obj, "annotations", path)

    fingerprint = (opt_str(obj, "fingerprint", path) or "").strip() or label_fingerprint(labels)

    links: dict[str, str] = {}
    generator = opt_str(obj, "generatorURL", path)
    if generator:
        links["generator"] = generator
    for annotation, link in ANNOTATION_LINKS.items():
        url = annotations.get(annotation, "").strip()
        if url:
            links[link] = url

    description = annotations.get("description", "")
    severity = labels.get("severity", "").strip()
    return AlertDraft(
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=annotations,
        summary=alert_summary(annotations, labels, fingerprint),
        description=description,
        starts_at=parse_time(obj.get("startsAt"), child(path, "startsAt")),
        ends_at=parse_time(obj.get("endsAt"), child(path, "endsAt")),
        links=links,
        severity_hint=severity or None,
        raw=dict(obj),
    )


def alert_summary(annotations: dict[str, str], labels: dict[str, str], fingerprint: str) -> str:
    """``summary`` annotation, else the first line of ``description``, else ``alertname``."""
    summary = annotations.get("summary", "").strip()
    if summary:
        return summary
    for line in annotations.get("description", "").splitlines():
        if line.strip():
            return line.strip()
    name = labels.get("alertname", "").strip()
    return name or f"alert {fingerprint}"


def unquote_meta(text: str) -> str:
    r"""Undo Go's ``regexp.QuoteMeta``: ``web\.hook`` → ``web.hook``."""
    return _QUOTED_META.sub(r"\1", text)


def _check_version(obj: dict[str, object], source: str, expected: str) -> None:
    version = opt_str(obj, "version", ROOT)
    if version is None or version == expected:
        return
    hint = ""
    if source == SOURCE and version == "1" and "orgId" in obj:
        hint = " (this is a Grafana body: send it to the grafana source)"
    elif source != SOURCE and version == WEBHOOK_VERSION:
        hint = " (this is an Alertmanager body: send it to the alertmanager source)"
    raise PayloadError("version", f"expected {expected!r} for {source}, got {show(version)}{hint}")


def _status(value: object, path: str) -> AlertStatus:
    if not isinstance(value, str):
        raise PayloadError(path, f"expected 'firing' or 'resolved', got {show(value)}")
    try:
        return AlertStatus(value.strip().lower())
    except ValueError:
        raise PayloadError(path, f"expected 'firing' or 'resolved', got {show(value)}") from None


def _group_status(
    alerts: tuple[NormalizedAlert, ...], body_status: AlertStatus | None
) -> AlertStatus | None:
    if not alerts:
        return body_status
    if any(alert.status is AlertStatus.FIRING for alert in alerts):
        return AlertStatus.FIRING
    return AlertStatus.RESOLVED
