"""Detection and the durations computed from it, on edge cases (no database needed)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.postmortem import detection_times, format_duration
from bot.store.models import Alert, Incident

from ..conftest import T0

M = timedelta(minutes=1)


def incident(**times: datetime) -> Incident:
    made = Incident(
        key="INC-0001",
        number=1,
        title="t",
        severity="P2",
        created_by="U1",
        declared_at=T0,
        updated_at=T0,
    )
    for name, value in times.items():
        setattr(made, name, value)
    return made


def alert(started: datetime | None = None, first_seen: datetime = T0) -> Alert:
    return Alert(
        source="alertmanager",
        fingerprint="f",
        status="firing",
        starts_at=started,
        first_seen=first_seen,
        last_seen=first_seen,
    )


@pytest.mark.parametrize(
    ("fields", "alerts", "detected", "source"),
    [
        ({}, [], T0, "declaration"),
        ({"detected_at": T0 - 5 * M}, [], T0 - 5 * M, "record"),
        ({"detected_at": T0 - 5 * M}, [alert(T0 - 5 * M)], T0 - 5 * M, "alert"),  # a tie
        ({"detected_at": T0 - 5 * M}, [alert(T0 - 9 * M)], T0 - 9 * M, "alert"),
        ({"detected_at": T0 - 5 * M}, [alert(T0 - 2 * M)], T0 - 5 * M, "record"),
        ({}, [alert(T0 + 3 * M)], T0, "declaration"),  # the alert came after a person
        ({}, [alert(None, T0 - 1 * M)], T0 - 1 * M, "alert"),  # no start: first seen
        ({}, [alert(T0 - 1 * M), alert(T0 - 7 * M)], T0 - 7 * M, "alert"),  # the earliest
    ],
)
def test_detection(
    fields: dict[str, datetime], alerts: list[Alert], detected: datetime, source: str
) -> None:
    times = detection_times(incident(**fields), alerts, T0 + 60 * M)
    assert (times.detected, times.detected_from) == (detected, source)


def test_spans_from_detection_and_declaration() -> None:
    times = detection_times(
        incident(
            detected_at=T0 - 3 * M,
            acknowledged_at=T0 + 4 * M,
            mitigated_at=T0 + 25 * M,
            resolved_at=T0 + 45 * M,
        ),
        [],
        T0 + 50 * M,
    )
    assert times.to_declare == 3 * M
    assert (times.to_acknowledge.from_detection, times.to_acknowledge.from_declaration) == (
        7 * M,
        4 * M,
    )
    assert times.to_mitigate.from_declaration == 25 * M
    assert times.to_resolve.from_detection == 48 * M
    assert times.duration == 48 * M  # not to "now"
    assert not times.ongoing


def test_open_incident_runs_to_now() -> None:
    times = detection_times(incident(), [], T0 + timedelta(days=2, hours=3))
    assert times.to_resolve.from_detection is None
    assert times.duration == timedelta(days=2, hours=3)
    assert times.ongoing


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        (timedelta(0), "0 s"),
        (timedelta(milliseconds=900), "0 s"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(seconds=60), "1 min"),
        (timedelta(seconds=90), "1 min 30 s"),
        (timedelta(minutes=59, seconds=59), "59 min 59 s"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=1, minutes=5, seconds=30), "1 h 5 min"),
        (timedelta(days=1, hours=3), "1 d 3 h"),
        (timedelta(days=2, minutes=5), "2 d 5 min"),
        (timedelta(minutes=-3), "-3 min"),
    ],
)
def test_format_duration(value: timedelta | None, shown: str) -> None:
    assert format_duration(value) == shown
