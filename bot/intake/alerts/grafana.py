"""Grafana unified alerting webhook bodies (``version: "1"``).

Alertmanager's group shape (see ``bot.intake.alerts.alertmanager``) plus, on the body,
``orgId``, ``title``, ``state`` (``alerting``/``ok``), ``message``, and on each
alert ``values`` (name → number, or ``null``), ``valueString``,
``dashboardURL``, ``panelURL``, ``silenceURL``, ``imageURL`` and ``orgId``.

Links: ``generator`` (generatorURL), ``silence``, ``dashboard``, ``panel``,
``image`` and ``runbook`` (the ``runbook_url`` annotation); empty URLs are
left out.  ``Delivery.extra`` adds ``org_id``, ``title``, ``state`` and
``message`` to Alertmanager's keys.  The legacy (Grafana 8 and older) alerting
body, with ``ruleId``/``evalMatches`` and no ``alerts``, is rejected with a
message saying so.
"""

from __future__ import annotations

from typing import Any

from bot.intake.alerts.alertmanager import AlertDraft, parse_group, read_alert
from bot.intake.alerts.errors import (
    ROOT,
    PayloadError,
    child,
    expect_object,
    opt_int,
    opt_str,
    wrong_type,
)
from bot.intake.alerts.model import Delivery

SOURCE = "grafana"
WEBHOOK_VERSION = "1"

# Per-alert URL fields and the ``links`` key each becomes.
URL_FIELDS: dict[str, str] = {
    "silenceURL": "silence",
    "dashboardURL": "dashboard",
    "panelURL": "panel",
    "imageURL": "image",
}


def parse(body: object) -> Delivery:
    """Read one Grafana unified alerting webhook body."""
    if (
        isinstance(body, dict)
        and "alerts" not in body
        and ("evalMatches" in body or "ruleId" in body)
    ):
        raise PayloadError(
            "alerts",
            "required field is missing: this is a legacy (Grafana 8 and older) alerting body; "
            "use a unified alerting webhook contact point",
        )
    return parse_group(
        body,
        source=SOURCE,
        version=WEBHOOK_VERSION,
        read_one=_read_alert,
        read_envelope=_read_envelope,
    )


def _read_alert(value: object, path: str) -> AlertDraft:
    draft = read_alert(value, path)
    obj = expect_object(value, path)
    for key, link in URL_FIELDS.items():
        url = opt_str(obj, key, path)
        if url and url.strip():
            draft.links[link] = url.strip()
    draft.values = _values(obj.get("values"), child(path, "values"))
    opt_str(obj, "valueString", path)  # type-checked only; kept in ``raw``
    return draft


def _values(value: object, path: str) -> dict[str, float]:
    if value is None:
        return {}
    mapping = expect_object(value, path)
    out: dict[str, float] = {}
    for name, item in mapping.items():
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise wrong_type(child(path, name), "a number", item)
        try:
            number = float(item)
        except OverflowError:
            raise PayloadError(child(path, name), "number out of range") from None
        out[name] = number
    return out


def _read_envelope(obj: dict[str, object]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    org_id = opt_int(obj, "orgId", ROOT)
    if org_id is not None:
        extra["org_id"] = org_id
    for key in ("title", "state", "message"):
        text = opt_str(obj, key, ROOT)
        if text is not None:
            extra[key] = text
    return extra
