"""``paging.opsgenie`` targets: read and checked like PagerDuty's, one name space with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.config.settings import load_settings
from bot.errors import ConfigError

KEY = "6f1e2a3b-opsgenie-api-key"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OG_OPS_KEY", KEY)
    monkeypatch.setenv("PD_ONCALL_KEY", "a" * 32)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "warroom.yaml"
    path.write_text("paging:\n" + body)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return [str(p) for p in caught.value.problems]


def test_an_opsgenie_target_is_read_with_its_defaults_and_its_key_only_from_the_env(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "  opsgenie:\n"
        "    ops: {api_key_env: OG_OPS_KEY, team: sre, priorities: {P1: P1, low: P4}}\n"
        "    eu: {api_key_env: OG_OPS_KEY, url: 'https://api.eu.opsgenie.com/'}\n"
        "  rules:\n"
        "    - {target: ops}\n",
    )
    settings = load_settings(path)
    ops, eu = settings.paging.opsgenie["ops"], settings.paging.opsgenie["eu"]
    assert (ops.url, ops.team, ops.api_key()) == ("https://api.opsgenie.com", "sre", KEY)
    assert (eu.url, eu.team, eu.priorities) == ("https://api.eu.opsgenie.com", None, {})
    assert settings.paging.targets == ["ops", "eu"]
    assert KEY not in json.dumps(settings.masked())


def test_a_missing_key_variable_is_named_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OG_OPS_KEY")
    path = write(tmp_path, "  opsgenie:\n    ops:\n      api_key_env: OG_OPS_KEY\n")
    assert problems(path) == [
        f"{path}:3: paging.opsgenie.ops: environment variable OG_OPS_KEY is not set"
    ]


@pytest.mark.parametrize(
    ("target", "key", "line", "said"),
    [
        ("{api_key_env: OG_OPS_KEY, priorities: {P1: P0}}", "priorities.P1", 4, "'P1'"),
        ("{api_key_env: OG_OPS_KEY, url: 'ftp://og'}", "url", 4, "http:// or https://"),
        ("{api_key_env: OG_OPS_KEY, team: ''}", "team", 4, "at least 1 character"),
        ("{api_key_env: OG_OPS_KEY, responders: [sre]}", "responders", 4, "unknown key"),
    ],
)
def test_a_bad_value_is_named_with_file_line_and_key(
    tmp_path: Path, target: str, key: str, line: int, said: str
) -> None:
    path = write(tmp_path, f"  pagerduty: {{}}\n  opsgenie:\n    ops: {target}\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:{line}: paging.opsgenie.ops.{key}: "), problem
    assert said in problem


def test_a_priority_map_names_severities_of_the_scheme(tmp_path: Path) -> None:
    path = write(
        tmp_path, "  opsgenie:\n    ops: {api_key_env: OG_OPS_KEY, priorities: {P9: P1}}\n"
    )
    (problem,) = problems(path)
    assert "paging.opsgenie.ops.priorities: Unknown severity 'P9'" in problem


def test_a_name_is_one_target_across_pagerduty_and_opsgenie(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  pagerduty:\n"
        "    oncall: {routing_key_env: PD_ONCALL_KEY}\n"
        "  opsgenie:\n"
        "    oncall: {api_key_env: OG_OPS_KEY}\n",
    )
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:1: paging: opsgenie.oncall: 'oncall' is a pagerduty")
    assert "unique across paging.pagerduty and paging.opsgenie" in problem


def test_an_unknown_target_is_named_with_both_lists(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  pagerduty:\n"
        "    oncall: {routing_key_env: PD_ONCALL_KEY}\n"
        "  opsgenie:\n"
        "    ops: {api_key_env: OG_OPS_KEY}\n"
        "    platform: {api_key_env: OG_OPS_KEY}\n"
        "  escalation:\n"
        "    - {page: manager}\n",
    )
    (problem,) = problems(path)
    assert problem == (
        f"{path}:1: paging: escalation[0].page: no paging target 'manager' "
        "(known: paging.pagerduty: oncall; paging.opsgenie: ops, platform)"
    )
    only = write(
        tmp_path, "  opsgenie:\n    ops: {api_key_env: OG_OPS_KEY}\n  rules: [{target: x}]\n"
    )
    assert "(known: paging.pagerduty: none; paging.opsgenie: ops)" in problems(only)[0]
