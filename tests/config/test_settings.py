"""Settings: environment over YAML over defaults; every mistake named with file, key and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config.settings import load_settings, mask_url, parse_duration
from bot.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.startswith("WARROOM_") or var in (
            "DATABASE_URL",
            "REDIS_URL",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "SLACK_APP_TOKEN",
        ):
            monkeypatch.delenv(var)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "warroom.yaml"
    path.write_text(text)
    return path


def problems(path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return [str(p) for p in caught.value.problems]


def test_defaults_need_no_file() -> None:
    settings = load_settings()
    assert settings.database.url == "sqlite:///./incidents.db"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.severity_scheme().names == ["P1", "P2", "P3", "P4"]
    assert settings.severity_scheme().get("P1").response_time == timedelta(minutes=15)
    assert not settings.slack.connected


def test_yaml_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  port: 9000\n  host: 0.0.0.0\nseverity:\n  scheme: p0-p3\n")
    monkeypatch.setenv("WARROOM_SERVER__PORT", "9100")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app:pw@db/warroom")
    settings = load_settings(path)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.database.url == "postgresql+psycopg://app:pw@db/warroom"
    assert settings.severity_scheme().names == ["P0", "P1", "P2", "P3"]
    assert settings.config_file == path


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_CONFIG", str(write(tmp_path, "log_level: DEBUG\n")))
    assert load_settings().log_level == "DEBUG"


def test_every_problem_names_file_line_key_and_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n"
        "  port: 99999\n"
        "  hots: x\n"
        "severity:\n"
        "  scheme: p0-p3\n"
        "  default: P9\n"
        "incidents:\n"
        "  timezone: Mars/Olympus\n"
        "database:\n"
        "  connect_timeout: soon\n",
    )
    found = problems(path)
    assert found == [
        f"{path}:2: server.port: Input should be less than or equal to 65535",
        f"{path}:3: server.hots: unknown key (did you mean 'host'?); known keys: host, port, "
        "public_url",
        f"{path}:10: database.connect_timeout: not a duration: 'soon' (write e.g. 15m, 1h, "
        "1h30m, 2d or 90s)",
        f"{path}:6: severity.default: 'P9' is not one of the levels P0, P1, P2, P3",
        f"{path}:8: incidents.timezone: unknown time zone 'Mars/Olympus' (e.g. UTC, Europe/Berlin)",
    ]


def test_secrets_are_refused_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "slack:\n  bot_token: xoxb-123\ndatabase:\n  url: postgresql://app:hunter2@db/x\n",
    )
    found = problems(path)
    assert found == [
        f"{path}:2: slack.bot_token: secrets are read only from the environment: set "
        "SLACK_BOT_TOKEN instead",
        f"{path}:4: database.url: this URL holds a password: set it in DATABASE_URL instead",
    ]


def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARROOM_SERVER__PORT", "eighty")
    assert problems() == [
        "environment WARROOM_SERVER__PORT: server.port: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("server: [1, 2\n", ":2: (syntax): not valid YAML: expected ',' or ']'"),
        ("- just\n- a list\n", ":1: (top level): must be a mapping of sections"),
        ("database:\n  url: mysql://x/y\n", ":2: database.url: unsupported database 'mysql'"),
        ("incidents:\n  roles: [scribe]\n", ":2: incidents.roles: roles must include"),
        (
            "severity:\n  levels:\n    - name: SEV1\n      label: Big\n      response_time: 5m\n",
            ":3: severity.levels.0.update_interval: Field required",
        ),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, needle: str) -> None:
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert needle in found[0]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: (file): no such file"]


def test_custom_severity_levels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "severity:\n"
        "  levels:\n"
        "    - {name: SEV1, label: Critical, response_time: 5m, update_interval: 15m}\n"
        "    - {name: SEV2, label: Major, response_time: 30m, update_interval: 1h}\n"
        "  default: SEV2\n",
    )
    scheme = load_settings(path).severity_scheme()
    assert scheme.names == ["SEV1", "SEV2"]
    assert scheme.default == "SEV2"
    assert scheme.get("sev1").update_interval == timedelta(minutes=15)


def test_secrets_masked_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "sign-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db:5432/warroom")
    monkeypatch.setenv("WARROOM_WEB__TOKEN", "web-secret")
    settings = load_settings()
    assert settings.slack.connected
    printed = repr(settings) + str(settings.masked())
    for secret in ("xoxb-very-secret", "sign-secret", "hunter2", "web-secret"):
        assert secret not in printed
    assert settings.masked()["database"]["url"] == "postgresql://app:********@db:5432/warroom"
    assert settings.masked()["slack"]["bot_token"] == "********"


def test_bot_token_alone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    (problem,) = problems()
    assert "set one of them" in problem
    assert "SLACK_SIGNING_SECRET" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(2)),
        ("90", timedelta(seconds=90)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_mask_url_keeps_everything_but_the_password() -> None:
    assert mask_url("redis://:pw@cache:6379/0") == "redis://:********@cache:6379/0"
    assert mask_url("sqlite:///./incidents.db") == "sqlite:///./incidents.db"


def test_a_key_given_twice_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server:\n  port: 8081\nincidents:\n  key_prefix: OPS\nserver:\n  host: 0.0.0.0\n"
        "slack:\n  routing: []\n  routing: []\n",
    )
    assert problems(path) == [
        f"{path}:5: server: given twice (first on line 1); merge the two",
        f"{path}:9: slack.routing: given twice (first on line 8); merge the two",
    ]
