"""The README tells the truth: every setting documented, the commands are the ones CI runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.config.settings import Settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def setting_keys(model: type[BaseModel] = Settings, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if name == "config_file":
            continue
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= setting_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def documented_keys() -> set[str]:
    return set(re.findall(r"^\| `([a-z_.]+)` \|", README, flags=re.MULTILINE))


def test_every_setting_is_documented_and_every_documented_one_exists() -> None:
    assert setting_keys() - documented_keys() == set(), "settings missing from the README table"
    assert documented_keys() - setting_keys() == set(), (
        "README documents settings that do not exist"
    )


def fenced_command(title: str) -> str:
    section = README.split(f"## {title}\n", 1)[1]
    return re.search(r"```sh\n(.+?)\n```", section, flags=re.DOTALL).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = fenced_command("Test it")
    assert "pytest" in command
    ci = (REPO / ".ci" / "run").read_text()
    assert command in ci.splitlines(), ".ci/run must run the README's test command verbatim"


def test_dockerfile_installs_and_runs_as_the_readme_says() -> None:
    run_command = fenced_command("Run it")
    readme_steps = [shlex.split(step) for step in run_command.split("&&")]
    readme_install = next(s for s in readme_steps if "install" in s)
    dockerfile = (REPO / "Dockerfile").read_text()
    docker_install = next(
        shlex.split(step)
        for line in dockerfile.splitlines()
        if line.startswith("RUN ") and "pip install" in line
        for step in line.removeprefix("RUN ").split("&&")
        if "pip install" in step
    )

    def targets(argv: list[str]) -> list[str]:
        return [a for a in argv[argv.index("install") + 1 :] if not a.startswith("-")]

    assert targets(docker_install) == targets(readme_install) == ["."]
    assert 'CMD ["warroom", "serve"]' in dockerfile
    assert Path(readme_steps[-1][0]).name == "warroom"
    assert readme_steps[-1][1:] == ["serve"]
    assert "HEALTHCHECK" in dockerfile
    assert "/healthz" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, flags=re.MULTILINE), "must not run as root"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_rules_are_the_documented_ones() -> None:
    from bot.intake.classify import DEFAULT_RULES

    section = README.split("The shipped rules, from the runbooks:", 1)[1].split("\n\n", 2)[1]
    documented = re.findall(r"^\| `([a-z0-9.-]+)` \|", section, flags=re.MULTILINE)
    assert documented == [rule.name for rule in DEFAULT_RULES]


def test_every_alert_source_is_documented() -> None:
    from bot.intake.alerts.registry import PARSERS

    section = README.split("### Webhooks", 1)[1].split("```", 1)[0]
    for source in PARSERS:
        assert f"`{source}`" in section, f"source {source} is not described in the README"
