from __future__ import annotations

import pickle

import pytest

from bot.intake.alerts.errors import (
    ROOT,
    PayloadError,
    child,
    expect_object,
    opt_int,
    str_map,
    to_json_text,
)


def test_str_reads_field_then_message() -> None:
    err = PayloadError("alerts[0].startsAt", "not an RFC 3339 time: 'abc'")
    assert str(err) == "alerts[0].startsAt: not an RFC 3339 time: 'abc'"
    assert err.field == "alerts[0].startsAt"
    assert err.message == "not an RFC 3339 time: 'abc'"
    assert isinstance(err, ValueError)


def test_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(PayloadError("event.data.id", "required field is missing")))
    assert (err.field, err.message) == ("event.data.id", "required field is missing")


@pytest.mark.parametrize(
    ("parent", "key", "expected"),
    [
        (ROOT, "alerts", "alerts"),
        ("alerts", 0, "alerts[0]"),
        ("alerts[0]", "labels", "alerts[0].labels"),
        ("alerts[0].labels", "a.b", 'alerts[0].labels["a.b"]'),
        ("payload.custom_details", "ping time", 'payload.custom_details["ping time"]'),
        (ROOT, "has space", '$["has space"]'),
    ],
)
def test_child_paths(parent: str, key: str | int, expected: str) -> None:
    assert child(parent, key) == expected


def test_readers_name_the_field() -> None:
    with pytest.raises(PayloadError) as exc:
        expect_object([], ROOT)
    assert exc.value.field == "$"
    assert exc.value.message == "expected an object, got array: []"

    with pytest.raises(PayloadError) as exc:
        str_map({"labels": {"severity": 3}}, "labels", "alerts[0]")
    assert exc.value.field == "alerts[0].labels.severity"

    with pytest.raises(PayloadError) as exc:
        opt_int({"n": True}, "n", ROOT)
    assert exc.value.field == "n"
    assert opt_int({"n": 3.0}, "n", ROOT) == 3


def test_json_text_of_unserialisable_value_is_a_payload_error() -> None:
    with pytest.raises(PayloadError) as exc:
        to_json_text({1: "a", "b": 2}, "payload.custom_details")
    assert exc.value.field == "payload.custom_details"


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(PayloadError) as exc:
        expect_object("x" * 500, "body")
    assert len(str(exc.value)) < 150
