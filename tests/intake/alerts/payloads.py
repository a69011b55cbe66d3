"""Where the real sender payloads live, and how tests read them.

The bodies are vendored in ``tests/data/payloads`` (each sender's folder has a
PROVENANCE.md).  If the folder is missing the tests fail: a silently skipped
payload test proves nothing.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import pytest

from tests.data import PAYLOADS_DIR

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


@cache
def payload_dir() -> Path:
    """The payloads folder; fails the calling test when it is missing."""
    if not (PAYLOADS_DIR / "README.md").is_file() or not (PAYLOADS_DIR / "alertmanager").is_dir():
        pytest.fail(f"real alert payloads not found in {PAYLOADS_DIR}", pytrace=False)
    return PAYLOADS_DIR


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
