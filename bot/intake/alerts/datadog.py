"""Datadog webhook integration bodies.

Datadog posts whatever JSON template the user wrote, with ``$VARIABLES``
substituted as strings.  This parser reads the top-level keys of the default
template (``body``, ``last_updated``, ``event_type``, ``title``, ``date``,
``org{id,name}``, ``id``) and the names people give the other variables
(``alert_id``, ``alert_transition``, ``alert_title``, ``aggreg_key``,
``priority``, ``alert_status``, ``tags``/``event_tags``, ``link``,
``event_msg``…).  Key names are matched ignoring case and punctuation, so
``alert_id``, ``ALERT_ID``, ``$ALERT_ID`` and ``alertId`` are all the same.
A value still reading ``$SOME_VARIABLE`` (not substituted) counts as absent.

* Status: ``alert_transition`` ("Recovered"/"Resolved"/"OK"… → resolved;
  "Triggered"/"Re-Triggered"/"Warn"/"No Data"/"Renotify"… → firing), else
  ``alert_type`` (``success`` → resolved, ``error``/``warning`` → firing),
  else the ``[Triggered on {scope}]`` prefix of the title.  A body that says
  none of these is rejected: add ``$ALERT_TRANSITION`` to the template.
* Fingerprint: ``aggreg_key``; else ``alert_id`` (with the alert's scope, for
  multi-alert monitors); else a hash of the title (its ``[Transition on …]``
  prefix removed) and scope, which is the same for a monitor group's
  trigger and recovery.
* Labels: the tags (``"a:b,c:d"``; a tag without a value maps to ``""``;
  a repeated tag joins its values with ``,``), the scope, and ``monitor_id``.
* ``date`` (epoch milliseconds as a string) is ``starts_at`` of a firing
  alert and ``ends_at`` of a recovered one.
* Keys that look like credentials (``secret``, ``token``, ``password``…) are
  masked in ``raw``.
"""

from __future__ import annotations

import re
from typing import Any

from bot.intake.alerts.errors import ROOT, PayloadError, child, expect_object, scalar_text
from bot.intake.alerts.fingerprint import label_fingerprint, parse_time
from bot.intake.alerts.model import AlertStatus, Delivery, NormalizedAlert

SOURCE = "datadog"

# Logical field → normalised key names (lower case, letters and digits only), first wins.
_ALIASES: dict[str, tuple[str, ...]] = {
    "transition": ("alerttransition", "transition"),
    "alert_type": ("alerttype",),
    "alert_id": ("alertid", "monitorid"),
    "aggreg_key": ("aggregkey", "aggregationkey"),
    "cycle_key": ("alertcyclekey",),
    "title": ("alerttitle", "title", "eventtitle"),
    "body": ("eventmsg", "body", "message", "textonlymsg"),
    "tags": ("tags", "eventtags", "alerttags"),
    "scope": ("alertscope", "scope"),
    "alert_priority": ("alertpriority",),
    "priority": ("priority",),
    "alert_status": ("alertstatus",),
    "query": ("alertquery",),
    "metric": ("alertmetric",),
    "link": ("link", "eventlink", "url"),
    "snapshot": ("snapshot",),
    "date": ("date", "timestamp"),
    "last_updated": ("lastupdated",),
    "event_id": ("id", "eventid"),
    "event_type": ("eventtype",),
    "hostname": ("hostname",),
    "org_id": ("orgid",),
    "org_name": ("orgname",),
    "state": ("status", "state"),
}

_KNOWN_TRANSITIONS = frozenset(
    {
        "triggered",
        "retriggered",
        "recovered",
        "warn",
        "rewarn",
        "warnrecovered",
        "nodata",
        "renodata",
        "nodatarecovered",
        "renotify",
        "resolved",
        "ok",
    }
)
_RESOLVED_WORDS = re.compile(r"recover|resolv|\bok\b|success", re.IGNORECASE)
_TITLE = re.compile(
    r"\s*(?:\[(?P<priority>P\d)\]\s*)?"
    r"\[(?P<transition>[^\[\]{}]+?)(?:\s+on\s+\{(?P<scope>[^{}]*)\})?\]"
    r"\s*(?P<name>.*)",
    re.DOTALL,
)
_UNSUBSTITUTED = re.compile(r"\$[A-Z][A-Z0-9_]*")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_CREDENTIAL_KEY = re.compile(r"secret|token|password|passwd|api_?key|auth", re.IGNORECASE)
_MARKDOWN_FENCE = "%%%"


def parse(body: object) -> Delivery:
    """Read one Datadog webhook body."""
    obj = expect_object(body, ROOT)
    fields = _Fields(obj)

    title_raw = fields.get("title")
    title = _TITLE.fullmatch(title_raw) if title_raw else None
    if title is not None and _norm(title["transition"]) not in _KNOWN_TRANSITIONS:
        title = None
    name = (title["name"].strip() if title else title_raw) or ""
    scope = fields.get("scope") or (title["scope"].strip() if title and title["scope"] else None)

    transition = fields.get("transition")
    status = _status(fields, transition, title)

    labels = _parse_tags(fields.get("tags") or "")
    labels.update(_parse_tags(scope or ""))
    alert_id = fields.get("alert_id")
    if alert_id:
        labels.setdefault("monitor_id", alert_id)
    hostname = fields.get("hostname")
    if hostname:
        labels.setdefault("host", hostname)

    fingerprint = _fingerprint(fields, alert_id, name, scope)

    annotations: dict[str, str] = {}
    for key in ("alert_status", "query", "metric"):
        value = fields.get(key)
        if value:
            annotations[key if key == "alert_status" else f"alert_{key}"] = value
    if transition:
        annotations["transition"] = transition

    description = _strip_fence(fields.get("body") or "") or fields.get("alert_status") or ""
    summary = name or fields.get("alert_status") or f"Datadog alert {fingerprint}"

    when = parse_time(fields.get("date"), fields.key("date"))
    links: dict[str, str] = {}
    for key, link in (("link", "datadog"), ("snapshot", "snapshot")):
        url = fields.get(key)
        if url:
            links[link] = url

    severity = (
        fields.get("alert_priority")
        or (title["priority"] if title else None)
        or fields.get("priority")
        or _severity_from_type(fields.get("alert_type"))
    )

    alert = NormalizedAlert(
        source=SOURCE,
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=annotations,
        summary=summary,
        description=description,
        starts_at=when if status is AlertStatus.FIRING else None,
        ends_at=when if status is AlertStatus.RESOLVED else None,
        links=links,
        severity_hint=severity,
        raw=_redacted(obj),
    )
    return Delivery(
        source=SOURCE,
        alerts=(alert,),
        status=status,
        delivery_id=fields.get("event_id"),
        extra=_extra(obj, fields, transition),
    )


class _Fields:
    """The body's top-level scalar values, looked up by logical name."""

    def __init__(self, obj: dict[str, object]) -> None:
        self._obj = obj
        by_norm: dict[str, str] = {}
        for key in obj:
            by_norm.setdefault(_norm(key), key)
        self._keys: dict[str, str] = {}
        for logical, aliases in _ALIASES.items():
            for alias in aliases:
                if alias in by_norm:
                    self._keys[logical] = by_norm[alias]
                    break

    def key(self, logical: str) -> str:
        return self._keys.get(logical, logical)

    def get(self, logical: str) -> str | None:
        """The value as a stripped string; absent, null, empty or unsubstituted → ``None``."""
        key = self._keys.get(logical)
        if key is None:
            return None
        value = self._obj[key]
        if value is None:
            return None
        text = scalar_text(value, child(ROOT, key)).strip()
        if not text or _UNSUBSTITUTED.fullmatch(text):
            return None
        return text


def _status(fields: _Fields, transition: str | None, title: re.Match[str] | None) -> AlertStatus:
    if transition:
        return _from_words(transition)
    alert_type = (fields.get("alert_type") or "").lower()
    if alert_type == "success":
        return AlertStatus.RESOLVED
    if alert_type in ("error", "warning"):
        return AlertStatus.FIRING
    if title is not None:
        return _from_words(title["transition"])
    state = fields.get("state")
    if state and _norm(state) in _KNOWN_TRANSITIONS:
        return _from_words(state)
    raise PayloadError(
        "alert_transition",
        "cannot tell whether the alert fired or recovered: add "
        '"alert_transition": "$ALERT_TRANSITION" to the webhook payload',
    )


def _from_words(text: str) -> AlertStatus:
    return AlertStatus.RESOLVED if _RESOLVED_WORDS.search(text) else AlertStatus.FIRING


def _fingerprint(fields: _Fields, alert_id: str | None, name: str, scope: str | None) -> str:
    aggreg_key = fields.get("aggreg_key")
    if aggreg_key:
        return aggreg_key
    if alert_id:
        if not scope:
            return alert_id
        return label_fingerprint({"monitor_id": alert_id, "scope": _canonical_scope(scope)})
    if name:
        return label_fingerprint({"title": name, "scope": _canonical_scope(scope or "")})
    raise PayloadError(
        "alert_id",
        "nothing identifies the alert: add $AGGREG_KEY or $ALERT_ID (or a title) to the payload",
    )


def _canonical_scope(scope: str) -> str:
    return ",".join(sorted(part.strip() for part in scope.split(",") if part.strip()))


def _parse_tags(text: str) -> dict[str, str]:
    """``"a:b,c:d,e"`` → ``{"a": "b", "c": "d", "e": ""}``; repeats join with ``,``."""
    labels: dict[str, str] = {}
    for tag in text.split(","):
        name, _, value = tag.strip().partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name not in labels:
            labels[name] = value
        elif value and value not in labels[name].split(","):
            labels[name] = f"{labels[name]},{value}" if labels[name] else value
    return labels


def _strip_fence(text: str) -> str:
    """Drop the ``%%%`` markdown markers Datadog wraps ``$EVENT_MSG`` in."""
    text = text.strip()
    if text.startswith(_MARKDOWN_FENCE):
        text = text[len(_MARKDOWN_FENCE) :]
    if text.endswith(_MARKDOWN_FENCE):
        text = text[: -len(_MARKDOWN_FENCE)]
    return text.strip()


def _severity_from_type(alert_type: str | None) -> str | None:
    if alert_type and alert_type.lower() in ("error", "warning"):
        return alert_type.lower()
    return None


def _extra(obj: dict[str, object], fields: _Fields, transition: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if transition:
        extra["transition"] = transition
    for key in ("event_type", "alert_type", "cycle_key"):
        value = fields.get(key)
        if value:
            extra[key] = value
    updated = parse_time(fields.get("last_updated"), fields.key("last_updated"))
    if updated is not None:
        extra["last_updated"] = updated
    org: dict[str, str] = {}
    org_value = obj.get("org")
    if org_value is not None:
        org_obj = expect_object(org_value, "org")
        for key in ("id", "name"):
            item = org_obj.get(key)
            if item is None:
                continue
            text = scalar_text(item, child("org", key)).strip()
            if text and not _UNSUBSTITUTED.fullmatch(text):
                org[key] = text
    for key in ("org_id", "org_name"):
        value = fields.get(key)
        if value:
            org.setdefault(key.removeprefix("org_"), value)
    if org:
        extra["org"] = org
    return extra


def _redacted(obj: dict[str, object]) -> dict[str, Any]:
    return {
        key: ("<redacted>" if _CREDENTIAL_KEY.search(key) and value else value)
        for key, value in obj.items()
    }


def _norm(key: str) -> str:
    return _NOT_ALNUM.sub("", key.lower())
