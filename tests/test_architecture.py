"""The core knows nothing about Slack or the web framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"
FORBIDDEN = ("slack_bolt", "slack_sdk", "starlette", "fastapi", "uvicorn", "handlers")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_module_under_bot_imports_slack_or_web_code() -> None:
    offenders = {
        f"{path.relative_to(BOT.parent)}: {name}"
        for path in BOT.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, offenders
    assert len(list(BOT.rglob("*.py"))) > 5  # the walk really saw the package


def test_importing_the_whole_core_loads_no_slack_or_web_module() -> None:
    modules = sorted(
        ".".join(p.relative_to(BOT.parent).with_suffix("").parts)
        for p in BOT.rglob("*.py")
        if p.name != "env.py" and "versions" not in p.parts
    )
    script = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_checker_would_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from slack_sdk.web import WebClient\nimport starlette.routing\n")
    assert imported_modules(bad) == {"slack_sdk.web", "starlette.routing"}
