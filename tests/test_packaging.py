"""The shipped templates are found from a checkout and from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bot.templating import Templates, shipped_templates_dir

REPO = Path(__file__).resolve().parents[1]


def test_templates_found_in_a_checkout() -> None:
    assert shipped_templates_dir() == REPO / "templates"
    text = Templates().render("messages/initial.txt.j2", incident=_Incident(), next_update=None)
    assert text.splitlines()[0] == "INCIDENT: Cache failure"


class _Incident:
    title = "Cache failure"
    severity = "P2"
    status = "investigating"
    impact = ""


@pytest.mark.slow
def test_templates_found_in_an_installed_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("warroom-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bot/templates/messages/initial.txt.j2" in names
    assert "bot/migrations/versions/0001_initial_schema.py" in names
    assert not any(n.startswith("tests/") for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import bot, bot.templating as t\n"
        "print(bot.__file__)\n"
        "print(t.shipped_templates_dir())\n"
        "print(t.Templates().env.list_templates())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target)), "imported the checkout, not the wheel"
    assert out[1] == str(target / "bot" / "templates")
    assert "messages/resolution.txt.j2" in out[2]
