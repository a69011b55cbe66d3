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
from typing import Any, Literal

import msgspec

from bot.intake.alerts.errors import (
    INT_LIMIT,
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
_STATUSES = {status.value: status for status in AlertStatus}


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
    """Read one Alertmanager webhook body.

    A body of the shape Alertmanager writes is read by :func:`read_common` (its types
    checked in C); any other, or one it cannot take, by :func:`parse_group`, which names
    what is wrong. Both give the same delivery (``tests/intake/alerts/test_alertmanager.py``).
    """
    common = read_common(body)
    if common is not None:
        return common
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

    extra = _extra(
        str_map(obj, "groupLabels", ROOT),
        str_map(obj, "commonLabels", ROOT),
        str_map(obj, "commonAnnotations", ROOT),
        opt_str(obj, "externalURL", ROOT),
        opt_str(obj, "notification_reason", ROOT),
    )
    if read_envelope is not None:
        extra.update(read_envelope(obj))
    return _delivery(source, alerts, group_key, body_status, truncated, receiver, extra)


def _extra(
    group_labels: dict[str, str],
    common_labels: dict[str, str],
    common_annotations: dict[str, str],
    external_url: str | None,
    reason: str | None,
) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "group_labels": group_labels,
        "common_labels": common_labels,
        "common_annotations": common_annotations,
    }
    if external_url:
        extra["external_url"] = external_url
    if reason:
        extra["notification_reason"] = reason
    return extra


def _delivery(
    source: str,
    alerts: tuple[NormalizedAlert, ...],
    group_key: str | None,
    body_status: AlertStatus | None,
    truncated: int,
    receiver: str | None,
    extra: dict[str, Any],
) -> Delivery:
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
    fingerprint = opt_str(obj, "fingerprint", path)
    generator = opt_str(obj, "generatorURL", path)
    return _draft(obj, path, status, labels, annotations, fingerprint, generator)


def _draft(
    obj: dict[str, object],
    path: str,
    status: AlertStatus,
    labels: dict[str, str],
    annotations: dict[str, str],
    fingerprint: str | None,
    generator: str | None,
) -> AlertDraft:
    """The alert ``obj`` at ``path``, its fields read and their types checked."""
    fingerprint = (fingerprint or "").strip() or label_fingerprint(labels)
    links: dict[str, str] = {}
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


# -- the common shape, its types checked in C -------------------------------------------

_Status = Literal["firing", "resolved"]


class _CommonAlert(msgspec.Struct):
    """An alert as Alertmanager writes it: the types :func:`read_alert` asks for, and no
    other (a number for a time, ``"Firing"``, a label that is not a string go the long way)."""

    status: _Status
    labels: dict[str, str]
    annotations: dict[str, str] | None = None
    starts_at: str | None = msgspec.field(default=None, name="startsAt")
    ends_at: str | None = msgspec.field(default=None, name="endsAt")
    generator: str | None = msgspec.field(default=None, name="generatorURL")
    fingerprint: str | None = None


class _CommonGroup(msgspec.Struct):
    """A group notification as Alertmanager writes it (see :class:`_CommonAlert`)."""

    alerts: list[_CommonAlert]
    version: str | None = None
    group_key: str | None = msgspec.field(default=None, name="groupKey")
    truncated: int | None = msgspec.field(default=None, name="truncatedAlerts")
    status: _Status | None = None
    receiver: str | None = None
    external_url: str | None = msgspec.field(default=None, name="externalURL")
    reason: str | None = msgspec.field(default=None, name="notification_reason")
    group_labels: dict[str, str] | None = msgspec.field(default=None, name="groupLabels")
    common_labels: dict[str, str] | None = msgspec.field(default=None, name="commonLabels")
    common_annotations: dict[str, str] | None = msgspec.field(
        default=None, name="commonAnnotations"
    )


def read_common(body: object) -> Delivery | None:
    """An Alertmanager body of the common shape, read with its types checked at once by
    msgspec; ``None`` for any other body (or one this reader would refuse), which
    :func:`parse_group` reads and explains. Never a different delivery than it gives."""
    try:
        group = msgspec.convert(body, _CommonGroup)
    except (msgspec.ValidationError, ValueError):  # ValueError: a lone surrogate, say
        return None
    assert isinstance(body, dict)  # a Struct converts from a JSON object only
    truncated = group.truncated or 0
    if not 0 <= truncated < INT_LIMIT:
        return None
    items: list[dict[str, object]] = body["alerts"]
    try:
        _check_version(body, SOURCE, WEBHOOK_VERSION)
        alerts = tuple(
            _draft(
                items[index],
                child("alerts", index),
                _STATUSES[alert.status],
                alert.labels,
                alert.annotations or {},
                alert.fingerprint,
                alert.generator,
            ).build(SOURCE, group.group_key)
            for index, alert in enumerate(group.alerts)
        )
    except PayloadError:  # a time that does not read, say: the long way names it
        return None
    extra = _extra(
        group.group_labels or {},
        group.common_labels or {},
        group.common_annotations or {},
        group.external_url,
        group.reason,
    )
    status = None if group.status is None else _STATUSES[group.status]
    return _delivery(SOURCE, alerts, group.group_key, status, truncated, group.receiver, extra)


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
    return _QUOTED_META.sub(r"\1", text) if "\\" in text else text


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
    exact = _STATUSES.get(value) if isinstance(value, str) else None
    if exact is not None:  # as Alertmanager writes it
        return exact
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
