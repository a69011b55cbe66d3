"""PagerDuty Events API v2 bodies: the generic event shape many tools emit.

::

    {"routing_key", "event_action": "trigger" | "acknowledge" | "resolve",
     "dedup_key", "client", "client_url",
     "payload": {"summary", "source", "severity": critical|error|warning|info,
                 "timestamp", "component", "group", "class", "custom_details"},
     "links": [{"href", "text"}], "images": [{"src", "href", "alt"}]}

As PagerDuty does, a ``trigger`` needs ``payload.summary``, ``payload.source``
and ``payload.severity``; ``acknowledge`` and ``resolve`` need ``dedup_key``.
The fingerprint is ``dedup_key``; a trigger without one gets a hash of
``routing_key``, ``summary`` and ``source`` so that repeats of the same event
land on the same alert.  ``acknowledge`` is a firing alert with
``Delivery.extra["action"] == "acknowledge"``; ``resolve`` is a resolved one.
Labels come from ``source``, ``component``, ``group``, ``class`` and
``severity``; ``custom_details`` become annotations (non-string values as
JSON text).
"""

from __future__ import annotations

from typing import Any

from bot.intake.alerts.errors import (
    ROOT,
    PayloadError,
    child,
    expect_array,
    expect_object,
    opt_object,
    opt_str,
    req_str,
    show,
    to_json_text,
)
from bot.intake.alerts.fingerprint import label_fingerprint, parse_time
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert

SOURCE = "events"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
LABEL_FIELDS = ("source", "component", "group", "class")


def parse(body: object) -> Delivery:
    """Read one Events API v2 body."""
    obj = expect_object(body, ROOT)
    action = req_str(obj, "event_action", ROOT).strip().lower()
    if action not in ACTIONS:
        raise PayloadError(
            "event_action", f"expected one of {', '.join(ACTIONS)}, got {show(action)}"
        )
    routing_key = opt_str(obj, "routing_key", ROOT)
    dedup_key = (opt_str(obj, "dedup_key", ROOT) or "").strip() or None
    payload = opt_object(obj, "payload", ROOT)

    source: str | None
    severity: str | None
    if action == "trigger":
        if payload is None:
            raise PayloadError("payload", "required field is missing for a trigger")
        summary = req_str(payload, "summary", "payload")
        source = req_str(payload, "source", "payload")
        severity = _severity(req_str(payload, "severity", "payload"))
    else:
        if dedup_key is None:
            raise PayloadError("dedup_key", f"required field is missing for {action}")
        summary = (opt_str(payload, "summary", "payload") if payload else None) or dedup_key
        source = opt_str(payload, "source", "payload") if payload else None
        raw_severity = opt_str(payload, "severity", "payload") if payload else None
        severity = _severity(raw_severity) if raw_severity else None

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    starts_at = None
    if payload is not None:
        for key in LABEL_FIELDS:
            value = opt_str(payload, key, "payload")
            if value:
                labels[key] = value
        starts_at = parse_time(payload.get("timestamp"), "payload.timestamp")
        annotations = _details(payload.get("custom_details"), "payload.custom_details")
    if severity:
        labels["severity"] = severity

    fingerprint = dedup_key or label_fingerprint(
        {"routing_key": routing_key or "", "summary": summary, "source": source or ""}
    )
    status = AlertStatus.RESOLVED if action == "resolve" else AlertStatus.FIRING
    alert = NormalizedAlert(
        source=SOURCE,
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=annotations,
        summary=summary.strip() or fingerprint,
        starts_at=starts_at,
        links=_links(obj),
        severity_hint=severity,
        raw=dict(obj),
    )

    extra: dict[str, Any] = {"action": action}
    if routing_key:
        extra["routing_key"] = routing_key
    client = opt_str(obj, "client", ROOT)
    if client:
        extra["client"] = client
    return Delivery(source=SOURCE, alerts=(alert,), status=status, extra=extra)


def _severity(value: str) -> str:
    severity = value.strip().lower()
    if severity not in SEVERITIES:
        raise PayloadError(
            "payload.severity", f"expected one of {', '.join(SEVERITIES)}, got {show(value)}"
        )
    return severity


def _details(value: object, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"custom_details": value}
    if not isinstance(value, dict):
        return {"custom_details": to_json_text(value, path)}
    details = expect_object(value, path)
    out: dict[str, str] = {}
    for key, item in details.items():
        out[key] = item if isinstance(item, str) else to_json_text(item, child(path, key))
    return out


def _links(obj: dict[str, object]) -> dict[str, str]:
    """``client_url`` as ``client``, each ``links[]`` under its text, each image as ``image``."""
    links: dict[str, str] = {}
    client_url = opt_str(obj, "client_url", ROOT)
    if client_url:
        links["client"] = client_url
    for index, item in enumerate(_array(obj, "links")):
        path = child("links", index)
        entry = expect_object(item, path)
        href = req_str(entry, "href", path)
        text = (opt_str(entry, "text", path) or "").strip()
        _add_link(links, text or "link", href)
    for index, item in enumerate(_array(obj, "images")):
        path = child("images", index)
        src = opt_str(expect_object(item, path), "src", path)
        if src:
            _add_link(links, "image", src)
    return links


def _array(obj: dict[str, object], key: str) -> list[object]:
    value = obj.get(key)
    return [] if value is None else expect_array(value, key)


def _add_link(links: dict[str, str], name: str, url: str) -> None:
    key, n = name, 2
    while key in links:
        key, n = f"{name} ({n})", n + 1
    links[key] = url
