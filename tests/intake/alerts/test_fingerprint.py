from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.intake.alerts.errors import PayloadError
from bot.intake.alerts.fingerprint import label_fingerprint, parse_time


def test_label_fingerprint_is_sha256_prefix_of_sorted_labels() -> None:
    labels = {
        "alertname": "ServiceHighErrorRate",
        "service_name": "frontend",
        "severity": "critical",
        "signal": "errors",
    }
    assert label_fingerprint(labels) == "182d6af8dddf3661"
    assert label_fingerprint(dict(reversed(list(labels.items())))) == "182d6af8dddf3661"
    assert len(label_fingerprint({})) == 16


def test_label_fingerprint_separates_names_from_values() -> None:
    assert label_fingerprint({"a": "bc"}) != label_fingerprint({"ab": "c"})
    assert label_fingerprint({"a": "b", "c": "d"}) != label_fingerprint({"a": "b,c:d"})
    assert label_fingerprint({"a": "\ud800"})  # lone surrogates from JSON escapes still hash


UTC_CASES = [
    ("2026-08-24T10:34:30.583Z", datetime(2026, 8, 24, 10, 34, 30, 583000, tzinfo=UTC)),
    # Go emits up to nanoseconds: truncate (not round) to microseconds.
    ("2022-06-17T00:41:00.782137894Z", datetime(2022, 6, 17, 0, 41, 0, 782137, tzinfo=UTC)),
    ("2021-10-12T09:51:03.157076+02:00", datetime(2021, 10, 12, 7, 51, 3, 157076, tzinfo=UTC)),
    ("2015-07-17T08:42:58.315+0000", datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)),
    ("2021-06-04T13:55:30-05:30", datetime(2021, 6, 4, 19, 25, 30, tzinfo=UTC)),
    ("2021-06-04t13:55:30z", datetime(2021, 6, 4, 13, 55, 30, tzinfo=UTC)),
    ("2021-06-04 13:55:30", datetime(2021, 6, 4, 13, 55, 30, tzinfo=UTC)),
    ("2020-04-09T15:16:27Z", datetime(2020, 4, 9, 15, 16, 27, tzinfo=UTC)),
    # Epoch seconds / milliseconds, as numbers or the strings Datadog sends.
    ("1448435530000", datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)),
    (1448435530000, datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)),
    (1448435530, datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)),
    ("1448435530", datetime(2015, 11, 25, 7, 12, 10, tzinfo=UTC)),
    (1448435530.5, datetime(2015, 11, 25, 7, 12, 10, 500000, tzinfo=UTC)),
    ("1448435530123456", datetime(2015, 11, 25, 7, 12, 10, 123456, tzinfo=UTC)),
    (1448435530123456789, datetime(2015, 11, 25, 7, 12, 10, 123456, tzinfo=UTC)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("value", "expected"), UTC_CASES)
def test_parse_time_gives_aware_utc(value: object, expected: datetime) -> None:
    parsed = parse_time(value, "t")
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", [None, "", "  ", "0001-01-01T00:00:00Z"])
def test_absent_and_go_zero_time_are_none(value: object) -> None:
    assert parse_time(value, "t") is None


def test_go_zero_time_in_another_zone_is_not_the_zero_time() -> None:
    with pytest.raises(PayloadError):
        parse_time("0001-01-01T00:00:00+01:00", "t")  # before year 1 in UTC


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "2021-13-01T00:00:00Z",
        "2021-02-30T00:00:00Z",
        "2021-01-01T25:00:00Z",
        "2021-01-01T00:00:60Z",
        "2021-01-01T00:00:00+24:00",
        "2021-01-01",
        "2021-01-01T00:00:00Zjunk",
        "９９９９-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "1e10",
    ],
)
def test_bad_strings_name_the_field(value: str) -> None:
    with pytest.raises(PayloadError) as exc:
        parse_time(value, "alerts[0].startsAt")
    assert exc.value.field == "alerts[0].startsAt"
    assert str(exc.value).startswith("alerts[0].startsAt: not an RFC 3339 time: ")


def test_message_quotes_the_value() -> None:
    with pytest.raises(PayloadError) as exc:
        parse_time("abc", "alerts[0].startsAt")
    assert str(exc.value) == "alerts[0].startsAt: not an RFC 3339 time: 'abc'"


@pytest.mark.parametrize(
    "value", [True, [], {}, -1, "-5", float("nan"), float("inf"), 10**40, 1e300]
)
def test_bad_values_are_payload_errors(value: object) -> None:
    with pytest.raises(PayloadError) as exc:
        parse_time(value, "date")
    assert exc.value.field == "date"


def test_offsets_are_converted_not_dropped() -> None:
    east = parse_time("2021-10-12T09:51:03+02:00", "t")
    assert east == datetime(2021, 10, 12, 9, 51, 3, tzinfo=timezone(timedelta(hours=2)))
    assert east is not None
    assert east.utcoffset() == timedelta(0)
