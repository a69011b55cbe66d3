from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.intake.alerts import alertmanager, datadog, events, grafana, pagerduty, registry
from bot.intake.alerts.model import Delivery
from bot.intake.alerts.registry import PARSERS, get_parser, register_parser


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    saved = dict(PARSERS)
    yield
    PARSERS.clear()
    PARSERS.update(saved)


def test_builtin_sources() -> None:
    registered = dict(PARSERS)
    assert registered == {
        "alertmanager": alertmanager.parse,
        "grafana": grafana.parse,
        "pagerduty": pagerduty.parse,
        "datadog": datadog.parse,
        "events": events.parse,
    }
    assert get_parser("grafana") is grafana.parse


def test_register_a_users_own_source() -> None:
    def parse_mine(body: object) -> Delivery:
        return Delivery(source="mine", alerts=())

    register_parser("mine", parse_mine)
    assert PARSERS["mine"] is parse_mine
    assert get_parser("mine")({}) == Delivery(source="mine", alerts=())
    register_parser("mine", parse_mine)  # the same function again is fine

    with pytest.raises(ValueError, match="already registered"):
        register_parser("mine", lambda body: Delivery(source="mine", alerts=()))
    with pytest.raises(ValueError, match="already registered"):
        register_parser("grafana", parse_mine)
    register_parser("grafana", parse_mine, replace=True)
    assert PARSERS["grafana"] is parse_mine


@pytest.mark.parametrize("name", ["", "Mine", "1st", "my source", "a.b"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="parser name"):
        register_parser(name, alertmanager.parse)


def test_not_callable() -> None:
    with pytest.raises(TypeError):
        register_parser("mine", "parse")  # type: ignore[arg-type]


def test_unknown_source_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="alertmanager, datadog, events, grafana, pagerduty"):
        get_parser("nagios")
    assert registry.Parser is not None
