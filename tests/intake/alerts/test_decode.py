"""The one JSON decoding point: hostile bodies become a PayloadError with a path and a reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.intake.alerts.decode import MAX_DEPTH, careful_decode, decode_body
from bot.intake.alerts.errors import PayloadError
from tests.intake.alerts.payloads import KNOWN_BODIES, raw


def refused(data: bytes) -> PayloadError:
    with pytest.raises(PayloadError) as exc:
        decode_body(data)
    return exc.value


@pytest.mark.parametrize("name", KNOWN_BODIES)
def test_real_bodies_decode_as_json_loads_does(name: str) -> None:
    assert decode_body(raw(name)) == json.loads(raw(name))


@pytest.mark.parametrize("depth", [2_000, 5_000, 100_000])
def test_deep_arrays_and_objects_name_the_level_past_the_limit(depth: int) -> None:
    lists = refused(b"[" * depth + b"]" * depth)
    assert lists.field == "$" + "[0]" * MAX_DEPTH
    assert lists.message == f"nested deeper than {MAX_DEPTH} levels"
    objects = refused(b'{"a":' * depth + b"1" + b"}" * depth)
    assert objects.field == ".".join(["a"] * MAX_DEPTH)
    unclosed = refused(b"[" * depth)
    assert unclosed.field == lists.field


def test_depth_limit_is_exact_and_the_path_is_the_same_either_way() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert decode_body(ok) is not None
    over = MAX_DEPTH + 1
    walked = refused(b'{"alerts": [1, ' + b"[" * over + b"]" * over + b"]}")
    scanned = refused(b'{"alerts": [1, ' + b"[" * 5_000 + b"]" * 5_000 + b"]}")
    assert walked.field == scanned.field == "alerts[1]" + "[0]" * (MAX_DEPTH - 2)
    keyed = refused(b'{"x y": ' + b'{"k":' * 3_000 + b"1" + b"}" * 3_000 + b"}")
    assert keyed.field.startswith('$["x y"].k.k')


@pytest.mark.parametrize("digits", [21, 80, 4_301, 5_000, 200_000])
def test_integers_beyond_64_bits_are_refused_without_converting(digits: int) -> None:
    body = b'{"version": "4", "truncatedAlerts": ' + b"9" * digits + b', "alerts": []}'
    error = refused(body)
    assert error.field == "truncatedAlerts"
    assert error.message == f"integer of {digits} digits is out of range (64 bits at most)"
    assert refused(b'{"n": -' + b"9" * digits + b"}").field == "n"


def test_64_bit_integers_signed_and_unsigned_are_kept() -> None:
    assert decode_body(b"[18446744073709551615, -18446744073709551615]") == [2**64 - 1, 1 - 2**64]
    assert refused(b"[0, 18446744073709551616]").field == "$[1]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"1e400", "number out of range: 1e400"),
        (b"-1e999", "number out of range: -1e999"),
        (b"NaN", "NaN is not a JSON number"),
        (b"Infinity", "Infinity is not a JSON number"),
        (b"-Infinity", "-Infinity is not a JSON number"),
    ],
)
def test_non_finite_numbers_are_refused(text: bytes, message: str) -> None:
    error = refused(b'{"alerts": [{"values": {"B": ' + text + b"}}]}")
    assert (error.field, error.message) == ("alerts[0].values.B", message)


@pytest.mark.parametrize(
    "text", [b'"\\ud800"', b'"x\\udfff"', b'"\\udc00\\ud800"', b'"\xed\xa0\x80"']
)
def test_lone_surrogates_are_refused_in_values(text: bytes) -> None:
    body = b'{"alerts": [{"labels": {"alertname": ' + text + b"}}]}"
    error = refused(body)
    assert error.field == "alerts[0].labels.alertname"
    assert "lone surrogate" in error.message
    assert error.message.isascii()  # the answer can always be written


def test_surrogate_pairs_are_text() -> None:
    assert decode_body(b'{"a": "\\ud83d\\ude00"}') == {"a": "\N{GRINNING FACE}"}


def test_nul_and_surrogates_in_keys_name_the_key() -> None:
    nul = refused(b'{"alerts": [{"labels": {"a\\u0000": "b"}}]}')
    assert nul.field == 'alerts[0].labels["a\\u0000"]'
    assert nul.message == "object key holds a NUL character (\\u0000) at 1"
    surrogate = refused(b'{"\\ud800": 1}')
    assert surrogate.field == '$["\\ud800"]'
    assert "lone surrogate" in surrogate.message


def test_nul_in_a_value_is_refused() -> None:
    error = refused(b'{"event": {"id": "a\\u0000b"}}')
    assert (error.field, error.message) == (
        "event.id",
        "string holds a NUL character (\\u0000) at 1",
    )


def test_the_first_problem_in_the_text_is_the_one_reported() -> None:
    error = refused(b'{"a": [1, "\\u0000"], "b": NaN}')
    assert error.field == "a[1]"


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe\x00", b'{"a": 1}}', b"\x00"])
def test_malformed_json_is_refused_at_the_root(data: bytes) -> None:
    error = refused(data)
    assert error.field == "$"
    assert error.message.startswith("malformed JSON")


# -- the fast way and the careful way agree -------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="ascii"), max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(codec="ascii"), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=30,
)
# Bytes that are almost JSON: a value's text with a few bytes cut, doubled or swapped in.
_NASTY = [
    b"1e400",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"\\u0000",
    b"\\ud800",
    b"\x00",
    b"\t",
    b"99999999999999999999",
    b",",
    b"]",
    b"}",
    b'"',
    b"\\",
    b" ",
    b"0",
    b"\xef\xbb\xbf",
]


def _outcome(decode: Callable[[bytes], object], data: bytes) -> tuple[str, object]:
    try:
        return "value", decode(data)
    except PayloadError as error:
        return "refused", error.field


# Many values side by side: more than MAX_DEPTH brackets, so the depth must be walked.
_wide = st.lists(_values, min_size=1, max_size=40) | _values


@settings(max_examples=600, deadline=None)
@given(value=_wide, cuts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(_NASTY))))
def test_a_body_decodes_alike_the_fast_way_and_the_careful_way(
    value: object, cuts: list[tuple[int, bytes]]
) -> None:
    data = json.dumps(value).encode()
    for at, piece in cuts[:3]:
        at %= len(data) + 1
        data = data[:at] + piece + data[at:]
    fast, careful = _outcome(decode_body, data), _outcome(careful_decode, data)
    assert fast == careful
    if fast[0] == "value":
        assert repr(fast[1]) == repr(careful[1])  # the same types too: 1 is not 1.0 nor True


@pytest.mark.parametrize("name", KNOWN_BODIES)
def test_real_bodies_decode_alike_both_ways(name: str) -> None:
    assert repr(decode_body(raw(name))) == repr(careful_decode(raw(name)))


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, 1_000, 3_000])
def test_many_brackets_and_a_deep_one_among_them(depth: int) -> None:
    """Fifty alerts' worth of brackets, and one array nested ``depth`` deep beside them."""
    wide = b'{"alerts": [' + b",".join([b'{"labels": {"a": "b"}}'] * 50) + b'], "x": '
    body = wide + b"[" * depth + b"]" * depth + b"}"
    assert _outcome(decode_body, body) == _outcome(careful_decode, body)
    assert (_outcome(decode_body, body)[0] == "value") == (depth + 1 <= MAX_DEPTH)
