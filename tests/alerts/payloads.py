"""Where the real sender payloads live, and how tests read them.

The bodies are in the shared research folder (``<workspace>/shared/payloads``,
next to this repository), or wherever ``WARROOM_SHARED`` points (the
``shared`` folder or its ``payloads`` folder).  If neither exists the tests
fail: a silently skipped payload test proves nothing.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path

import pytest

# Every body under payloads/, by folder, with the parser (registry name) that reads it.
SOURCE_OF_FOLDER = {
    "alertmanager": "alertmanager",
    "grafana": "grafana",
    "pagerduty": "pagerduty",
    "datadog": "datadog",
    "pagerduty_events_v2": "events",
}

KNOWN_BODIES: tuple[str, ...] = (
    "alertmanager/firing_capture_am0.27.0.json",
    "alertmanager/firing_capture_am0.27.0.wire.json",
    "alertmanager/resolved_capture_am0.27.0.json",
    "alertmanager/resolved_capture_am0.27.0.wire.json",
    "datadog/default_payload_template.json",
    "datadog/recovered_custom_payload_capture_2015.json",
    "datadog/triggered_custom_payload_capture_2015.json",
    "grafana/unified_firing_default_payload_upstream_test.json",
    "grafana/unified_firing_two_alerts_doc_example.json",
    "grafana/unified_resolved_grafana9_zulip_fixture.json",
    "pagerduty/incident_acknowledged.json",
    "pagerduty/incident_resolved.json",
    "pagerduty/incident_triggered.json",
    "pagerduty/signed_priority_updated.raw.json",
    "pagerduty_events_v2/pagerduty_events_api_v2_acknowledge_doc_example.json",
    "pagerduty_events_v2/pagerduty_events_api_v2_resolve_doc_example.json",
    "pagerduty_events_v2/pagerduty_events_api_v2_trigger_doc_example.json",
)


def _candidates() -> list[Path]:
    found = [Path(__file__).resolve().parents[3] / "shared" / "payloads"]
    env = os.environ.get("WARROOM_SHARED")
    if env:
        found += [Path(env) / "payloads", Path(env)]
    return found


@cache
def payload_dir() -> Path:
    """The payloads folder; fails the calling test when it cannot be found."""
    candidates = _candidates()
    for candidate in candidates:
        if (candidate / "README.md").is_file() and (candidate / "alertmanager").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    pytest.fail(
        "real alert payloads not found (tried: "
        f"{tried}); set WARROOM_SHARED to the folder holding shared/payloads",
        pytrace=False,
    )


def raw(name: str) -> bytes:
    """The exact bytes of ``payloads/<name>``."""
    path = payload_dir() / name
    if not path.is_file():
        pytest.fail(f"payload {name} is missing from {payload_dir()}", pytrace=False)
    return path.read_bytes()


@cache
def _parsed(name: str) -> object:
    return json.loads(raw(name))


def load(name: str) -> object:
    """A fresh (deep-copied) parsed JSON body of ``payloads/<name>``."""
    return copy.deepcopy(_parsed(name))


def load_obj(name: str) -> dict[str, object]:
    body = load(name)
    assert isinstance(body, dict)
    return body


def source_of(name: str) -> str:
    return SOURCE_OF_FOLDER[name.split("/", 1)[0]]
