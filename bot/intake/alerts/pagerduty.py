"""PagerDuty webhooks V3 bodies and their ``X-PagerDuty-Signature``.

One delivery carries one event::

    {"event": {"id", "event_type", "resource_type", "occurred_at",
               "agent", "client", "data"}}

* ``pagey.ping`` (the "send test event" button) → ``Delivery(is_ping=True)``.
* An event whose ``data`` is an incident (``data.type == "incident"``:
  incident.triggered / acknowledged / resolved / priority_updated /
  escalated / reassigned / delegated / reopened / unacknowledged) → one alert
  whose fingerprint is the incident id.  It is ``resolved`` only for
  ``incident.resolved``; every other event leaves the incident firing.
* Events about something else (``incident.annotated``'s note,
  ``incident.responder.*``, ``incident.status_update_published``,
  ``service.*``) carry no alert: ``Delivery.extra`` says what they were
  (``data_type`` and, when given, ``incident_id``).

``Delivery.delivery_id`` is ``event.id``; ``Delivery.extra`` always has
``event_type``, and ``occurred_at`` when given.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.intake.alerts.errors import (
    ROOT,
    PayloadError,
    child,
    expect_array,
    expect_object,
    opt_int,
    opt_object,
    opt_str,
    req_object,
    req_str,
)
from bot.intake.alerts.fingerprint import parse_time
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert

logger = logging.getLogger(__name__)

SOURCE = "pagerduty"
SIGNATURE_HEADER = "X-PagerDuty-Signature"
PING_EVENT = "pagey.ping"
RESOLVED_EVENT = "incident.resolved"
TRIGGERED_EVENT = "incident.triggered"

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def parse(body: object) -> Delivery:
    """Read one PagerDuty V3 webhook body."""
    obj = expect_object(body, ROOT)
    event = req_object(obj, "event", ROOT)
    event_type = req_str(event, "event_type", "event")
    event_id = opt_str(event, "id", "event")
    resource_type = opt_str(event, "resource_type", "event")
    occurred_at = parse_time(event.get("occurred_at"), "event.occurred_at")

    extra: dict[str, Any] = {"event_type": event_type}
    if resource_type:
        extra["resource_type"] = resource_type
    if occurred_at is not None:
        extra["occurred_at"] = occurred_at
    agent = opt_object(event, "agent", "event")
    if agent is not None:
        agent_name = opt_str(agent, "summary", "event.agent")
        if agent_name:
            extra["agent"] = agent_name

    data = opt_object(event, "data", "event")
    if event_type == PING_EVENT:
        return Delivery(source=SOURCE, alerts=(), delivery_id=event_id, is_ping=True, extra=extra)

    if data is None:
        if event_type.startswith("incident."):
            raise PayloadError("event.data", "required field is missing")
        return Delivery(source=SOURCE, alerts=(), delivery_id=event_id, extra=extra)

    data_type = opt_str(data, "type", "event.data")
    if data_type is not None:
        extra["data_type"] = data_type
    is_incident = data_type == "incident" or (
        data_type is None and event_type.startswith("incident.") and "incident" not in data
    )
    if not is_incident:
        incident_ref = opt_object(data, "incident", "event.data")
        if incident_ref is not None:
            incident_id = opt_str(incident_ref, "id", "event.data.incident")
            if incident_id:
                extra["incident_id"] = incident_id
        logger.debug("pagerduty event %s (%s) carries no alert", event_type, data_type)
        return Delivery(source=SOURCE, alerts=(), delivery_id=event_id, extra=extra)

    alert = _incident_alert(data, event_type, occurred_at)
    return Delivery(
        source=SOURCE,
        alerts=(alert,),
        status=alert.status,
        delivery_id=event_id,
        extra=extra,
    )


def _incident_alert(
    data: dict[str, object], event_type: str, occurred_at: datetime | None
) -> NormalizedAlert:
    path = "event.data"
    incident_id = req_str(data, "id", path)
    status = AlertStatus.RESOLVED if event_type == RESOLVED_EVENT else AlertStatus.FIRING
    number = opt_int(data, "number", path)
    title = (opt_str(data, "title", path) or "").strip()
    summary = title or (f"PagerDuty incident #{number}" if number is not None else incident_id)

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    service = opt_object(data, "service", path)
    if service is not None:
        _copy_str(service, "summary", child(path, "service"), labels, "service")
        _copy_str(service, "id", child(path, "service"), labels, "service_id")
    urgency = opt_str(data, "urgency", path)
    if urgency:
        labels["urgency"] = urgency
    priority_name: str | None = None
    priority = opt_object(data, "priority", path)
    if priority is not None:
        priority_name = opt_str(priority, "summary", child(path, "priority")) or None
        if priority_name:
            labels["priority"] = priority_name

    _copy_str(data, "status", path, annotations, "pagerduty_status")
    _copy_str(data, "incident_key", path, annotations, "incident_key")
    if number is not None:
        annotations["incident_number"] = str(number)
    policy = opt_object(data, "escalation_policy", path)
    if policy is not None:
        _copy_str(
            policy, "summary", child(path, "escalation_policy"), annotations, "escalation_policy"
        )
    assignees = _reference_names(data.get("assignees"), child(path, "assignees"))
    if assignees:
        annotations["assignees"] = ", ".join(assignees)

    links: dict[str, str] = {}
    html_url = opt_str(data, "html_url", path)
    if html_url:
        links["pagerduty"] = html_url

    starts_at = parse_time(data.get("created_at"), child(path, "created_at"))
    if starts_at is None and event_type == TRIGGERED_EVENT:
        starts_at = occurred_at
    return NormalizedAlert(
        source=SOURCE,
        fingerprint=incident_id,
        group_key=f"pagerduty-incident:{incident_id}",  # one PagerDuty incident, one of ours
        status=status,
        labels=labels,
        annotations=annotations,
        summary=summary,
        starts_at=starts_at,
        ends_at=occurred_at if status is AlertStatus.RESOLVED else None,
        links=links,
        severity_hint=priority_name or urgency or None,
        raw=dict(data),
    )


def _copy_str(
    obj: dict[str, object], key: str, path: str, into: dict[str, str], as_key: str
) -> None:
    value = opt_str(obj, key, path)
    if value:
        into[as_key] = value


def _reference_names(value: object, path: str) -> list[str]:
    if value is None:
        return []
    names: list[str] = []
    for index, item in enumerate(expect_array(value, path)):
        ref = expect_object(item, child(path, index))
        name = opt_str(ref, "summary", child(path, index))
        if name:
            names.append(name)
    return names


def verify_signature(raw: bytes, header: str, secrets: Sequence[str]) -> bool:
    """Whether ``header`` (``X-PagerDuty-Signature``) signs ``raw`` with one of ``secrets``.

    The header is a comma-separated list of ``v1=<hex HMAC-SHA256>`` values
    (more than one while a secret is being rotated); the body is signed as
    received, byte for byte.  Empty secrets are ignored; every candidate is
    compared in constant time.
    """
    candidates: list[bytes] = []
    for part in header.split(","):
        version, sep, signature = part.strip().partition("=")
        if not sep or version.strip().lower() != "v1":
            continue
        signature = signature.strip().lower()
        if _HEX_SHA256.fullmatch(signature):
            candidates.append(signature.encode("ascii"))
    if not candidates:
        return False
    matched = False
    for secret in secrets:
        if not secret:
            continue
        expected = hmac.new(
            secret.encode("utf-8", "surrogatepass"), raw, hashlib.sha256
        ).hexdigest()
        for candidate in candidates:
            if hmac.compare_digest(expected.encode("ascii"), candidate):
                matched = True
    return matched
