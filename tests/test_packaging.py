"""What ships (the package and templates, found from a checkout or a wheel) and what does not
(test data); and that nothing in the repository reaches outside it."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
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
    assert "bot/store/migrations/versions/0001_initial_schema.py" in names
    assert "integrations/alertmanager.py" in names  # the vendor adapters ship too
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


@pytest.mark.slow
def test_the_sdist_ships_the_package_and_templates_but_no_test_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(tmp_path)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("warroom-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [n.split("/", 1)[1] for n in archive.getnames() if "/" in n]
    assert "bot/__init__.py" in names
    assert "handlers/cli/__init__.py" in names
    assert "integrations/alertmanager.py" in names
    assert "templates/messages/initial.txt.j2" in names
    assert "pyproject.toml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", ".ci/"))]
    assert not [n for n in names if n.endswith((".db", ".wire.json"))]


# -- the repository stands alone -------------------------------------------------------------

CHECKED = ("tests", "bench", "bot", "handlers", "integrations", ".ci")
# Ways out of the repository: "../<a folder beside the checkout>" (the team's shared folder was
# one), the environment variable that pointed there, the parent's absolute path, or
# ``parents[k]`` of ``__file__`` climbing above the root.  (Spelled so this file does not match.)
_SIBLINGS = sorted({"shared"} | {p.name for p in REPO.parent.iterdir() if p != REPO})
_CLIMB = re.compile(r"\.\.[/\\]+(?:" + "|".join(map(re.escape, _SIBLINGS)) + r")\b")
_ENV = "WARROOM_" + "SHARED"
_PARENTS = re.compile(r"__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def _checked_files() -> list[Path]:
    out = []
    for top in CHECKED:
        for path in sorted((REPO / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            vendored = path.is_relative_to(REPO / "tests" / "data") and path.suffix != ".py"
            if not vendored and path.suffix in {".py", ".sh", ".lua", ".toml", ".yaml", ".yml", ""}:
                out.append(path)
    return out


def outside_references(path: Path, text: str) -> list[str]:
    """Lines of ``text`` (the file at ``path``) that name a place outside the repository."""
    found = []
    depth = len(path.relative_to(REPO).parts) - 1  # folders between the file and the root
    parent = str(REPO.parent)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        if _CLIMB.search(line) or _ENV in line or f"{parent}/" in line:
            found.append(where)
        for match in _PARENTS.finditer(line):
            if int(match[1]) > depth:
                found.append(where)
    return found


def test_nothing_in_the_repository_names_a_place_outside_it() -> None:
    files = _checked_files()
    assert len(files) > 100
    problems = [p for f in files for p in outside_references(f, f.read_text(encoding="utf-8"))]
    assert problems == []


@pytest.mark.parametrize(
    ("relative", "line"),
    [
        ("tests/x.py", "DIR = '..' + '/shared/payloads'".replace("' + '", "")),
        ("tests/x.py", f"DIR = '{REPO.parent}/shared'"),
        ("tests/alerts/x.py", "BASE = Path(__file__).resolve().parents[" + "3]"),
        ("bench/x.py", f"os.environ['{_ENV}']"),
    ],
)
def test_the_outside_check_catches_each_way_out(relative: str, line: str) -> None:
    assert outside_references(REPO / relative, line) != []


def test_the_outside_check_allows_the_root_and_traversal_test_inputs() -> None:
    inside = REPO / "tests/alerts/x.py"
    assert outside_references(inside, "Path(__file__).resolve().parents[" + "2]") == []
    assert outside_references(inside, 'params={"item": "../admin?x=1#y"}') == []
