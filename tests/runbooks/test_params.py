"""Parameters from chat are typed, bounded and bound: never text inside the SQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.runbooks.params import IDENTIFIER, Param, coerce_all, parse_duration
from bot.runbooks.postgres import build_query, scan_sql

MINUTES = Param(type="int", default=10, min=0, max=1440)
TABLE = Param(type="identifier")
APP = Param(type="string", max_length=2000)
DECLARED = {"minutes": MINUTES, "table": TABLE, "app": APP}
TEMPLATE = (
    "SELECT pid FROM {table} WHERE application_name = %(app)s "
    "AND state_change < now() - make_interval(mins => %(minutes)s::int)"
)
HOSTILE = [
    "1; DROP TABLE x",
    "1 OR 1=1",
    "'; DROP TABLE victims; --",
    '"; DROP TABLE victims; --',
    'x"y',
    "tablé",
    "Robert'); DROP TABLE students;--",
    "$(rm -rf /)",
    "`reboot`",
    "a b",
    "victims;",
    "1e3",
    "١٢",  # Arabic-Indic digits are not ASCII digits
]


def test_ints_are_typed_and_bounded() -> None:
    assert MINUTES.coerce("15") == 15
    assert MINUTES.coerce(" 7 ") == 7
    assert MINUTES.coerce(3) == 3
    for bad in ["1; DROP TABLE x", "1.5", "10 minutes", "", "0x10", "١٢", True]:
        with pytest.raises(ValueError, match=r"whole number|not a int"):
            MINUTES.coerce(bad)
    with pytest.raises(ValueError, match="above the maximum 1440"):
        MINUTES.coerce("100000")
    with pytest.raises(ValueError, match="below the minimum 0"):
        MINUTES.coerce("-1")


def test_identifiers_are_strict_ascii_names() -> None:
    assert TABLE.coerce("songs") == "songs"
    assert TABLE.coerce("public.songs") == "public.songs"
    for bad in [*HOSTILE, "a.b.c", "1table", "", "x" * 64]:
        with pytest.raises(ValueError, match=r"not a table name|not text"):
            TABLE.coerce(bad)


def test_strings_pattern_enum_and_control_characters() -> None:
    version = Param(type="string", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", default="previous")
    assert version.coerce("v1.2.3") == "v1.2.3"
    for bad in ["v1; rm -rf /", "$(reboot)", "v1 v2", "../etc"]:
        with pytest.raises(ValueError, match="does not match"):
            version.coerce(bad)
    with pytest.raises(ValueError, match="control characters"):
        APP.coerce("line\nbreak")
    mode = Param(type="string", enum=["async", "sync"])
    assert mode.coerce("sync") == "sync"
    with pytest.raises(ValueError, match="not one of async, sync"):
        mode.coerce("SYNC; FLUSHALL")
    assert APP.coerce("ünïcødé ☃ 'quoted'") == "ünïcødé ☃ 'quoted'"


def test_durations() -> None:
    window = Param(type="duration", default="15m", min="1m", max="2h")
    assert window.default == timedelta(minutes=15)
    assert window.coerce("1h30m") == timedelta(minutes=90)
    assert window.coerce("90") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="above the maximum 2h"):
        window.coerce("3h")
    with pytest.raises(ValueError, match="not a duration"):
        window.coerce("5 minutes; DROP")
    assert parse_duration("2d") == timedelta(days=2)
    assert window.describe() == "duration 1m–2h, default 15m"


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="above the maximum"):
        Param(type="int", default=5000, max=10)
    with pytest.raises(ValueError, match=r"min \(5\) is greater than max \(1\)"):
        Param(type="int", min=5, max=1)
    with pytest.raises(ValueError, match="pattern applies to string"):
        Param(type="int", pattern="x")
    with pytest.raises(ValueError, match="not a regular expression"):
        Param(type="string", pattern="(")


def test_coerce_all_lists_every_problem() -> None:
    with pytest.raises(ValueError, match="minutes") as caught:
        coerce_all(DECLARED, {"minutes": "ten", "table": "x;y", "extra": "1"})
    message = str(caught.value)
    assert "minutes:" in message
    assert "table:" in message
    assert "app is required" in message
    assert "unknown parameter 'extra'" in message
    assert coerce_all({"minutes": MINUTES}, {}) == {"minutes": 10}


def test_sql_scanning_finds_placeholders_and_extra_statements() -> None:
    values, identifiers, problems = scan_sql(TEMPLATE)
    assert values == {"app", "minutes"}
    assert identifiers == {"table"}
    assert problems == []
    assert scan_sql("SELECT 1; SELECT 2")[2]
    assert scan_sql("SELECT 1;")[2] == []
    assert scan_sql("SELECT ';' AS a, $x$;$x$ AS b -- ;\n/* ; */")[2] == []
    assert scan_sql("SELECT 'it''s; fine'; DELETE FROM x")[2]
    assert "write %%" in scan_sql("SELECT 'a%' AS x")[2][0]
    assert scan_sql("SELECT 'a%%' AS x")[2] == []
    assert scan_sql("SELECT '{' AS x")[2]
    assert scan_sql("SELECT '{{}}' AS x")[2] == []


@given(st.text(max_size=300))
def test_no_parameter_value_ever_reaches_the_sql_text(value: str) -> None:
    for name in ("app", "minutes", "table"):
        given_values: dict[str, object] = {"app": "x", "minutes": "1", "table": "t", name: value}
        try:
            typed = coerce_all(DECLARED, given_values)
        except ValueError:
            continue
        query, bound = build_query(TEMPLATE, DECLARED, typed)
        text = query.as_string(None)
        table = typed["table"]
        assert isinstance(table, str)
        assert IDENTIFIER.fullmatch(table)
        quoted = ".".join(f'"{part}"' for part in table.split("."))
        assert text == TEMPLATE.replace("{table}", quoted)
        assert bound == {"app": typed["app"], "minutes": typed["minutes"]}
        if name == "app":
            assert bound["app"] == value  # bound as-is, as a value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_rejected_or_bound(value: str) -> None:
    for name in ("minutes", "table"):
        with pytest.raises(ValueError, match=name):
            coerce_all(DECLARED, {"app": "x", "minutes": "1", "table": "t", name: value})
    typed = coerce_all(DECLARED, {"app": value, "table": "t"})
    query, bound = build_query(TEMPLATE, DECLARED, typed)
    assert value not in query.as_string(None)
    assert bound["app"] == value
