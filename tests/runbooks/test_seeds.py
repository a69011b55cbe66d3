"""The built-in severity presets and runbooks are the ones the user's own runbooks describe.

The seeds (``tests/data/seeds``) are the user's runbooks, kept verbatim; these tests read the
severity tables and emergency procedures out of them, so a change to a preset or a built-in
that drifts from what the user wrote fails here.
"""

from __future__ import annotations

import re
from datetime import timedelta

from bot.incidents.severity import PRESETS
from bot.runbooks import builtin_dir, load_runbooks
from tests.data import SEEDS_DIR

_UNITS = {"min": 60, "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600}


def _seed(prefix: str) -> str:
    (path,) = SEEDS_DIR.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


def _duration(text: str) -> timedelta:
    number, unit = text.split()
    return timedelta(seconds=int(number) * _UNITS[unit])


def test_all_five_seeds_are_vendored() -> None:
    assert sorted(p.name[:3] for p in SEEDS_DIR.glob("*.txt")) == [
        "000",
        "001",
        "002",
        "003",
        "004",
    ]


def test_the_p1_p4_preset_is_the_classification_table_of_the_first_seed() -> None:
    rows = re.findall(r"^\| (P\d) - (\w+) \| ([^|]+?) \| ([^|]+?) \|$", _seed("000"), re.M)
    assert len(rows) == 4
    levels = PRESETS["p1-p4"].levels
    assert [(lv.name, lv.label, lv.response_time, lv.description) for lv in levels] == [
        (name, label, _duration(time), examples) for name, label, time, examples in rows
    ]


def test_the_p0_p3_preset_is_the_severity_list_of_the_fourth_seed() -> None:
    seed = _seed("003")
    heads = re.findall(r"^#### (P\d) - (\w+) \(Response Time: ([^)]+)\)$", seed, re.M)
    assert len(heads) == 4
    levels = PRESETS["p0-p3"].levels
    assert [(lv.name, lv.label, lv.response_time) for lv in levels] == [
        (name, label, _duration(time)) for name, label, time in heads
    ]
    # Each level's description starts with the first examples the seed lists under it.
    for level in levels:
        block = seed.split(f"#### {level.name} - ", 1)[1].split("\n\n", 1)[0]
        first = re.findall(r"^- (.+)$", block, re.M)[0]
        assert level.description.lower().startswith(first.lower()), (level.name, first)


def test_every_emergency_procedure_of_the_seeds_has_a_built_in_runbook() -> None:
    titles = {rb.title.lower() for rb in load_runbooks([builtin_dir()])}
    emergencies = re.findall(r"^### \S+ Critical: ([^(\n]+?)\s*(?:\(.*\))?$", _seed("000"), re.M)
    assert emergencies == [
        "Database Connection Exhaustion",
        "High Error Rate",
        "Performance Degradation",
    ]
    for name in emergencies:
        assert any(name.lower() in title for title in titles), f"no built-in runbook for {name}"
