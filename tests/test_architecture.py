"""The architecture holds: the core knows nothing about Slack, the web framework or vendors; its
packages import each other only in the directions the README's diagram draws; no import circles.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOT = REPO / "bot"
FORBIDDEN = (
    "slack_bolt",
    "slack_sdk",
    "starlette",
    "fastapi",
    "uvicorn",
    "prometheus_client",
    "handlers",
    "integrations",
)

#: Modules any package may import: the foundation.
FOUNDATION = {"bot", "bot.errors", "bot.clock", "bot.templating"}

#: For each unit of the core, the other units it may import (the foundation aside). A unit is a
#: package of ``bot`` or a top-level module; the README's "Architecture" section lists the same.
ALLOWED: dict[str, set[str]] = {
    "bot.store": set(),
    "bot.incidents": {"bot.store"},
    "bot.intake": {"bot.incidents", "bot.store"},
    "bot.runbooks": {"bot.incidents", "bot.store"},
    "bot.postmortem": {"bot.incidents", "bot.store"},
    "bot.ports": {"bot.incidents"},
    "bot.config": {"bot.intake", "bot.incidents", "bot.runbooks"},
    "bot.delivery": {"bot.ports", "bot.config", "bot.runbooks", "bot.incidents", "bot.store"},
    "bot.core": {
        "bot.delivery",
        "bot.config",
        "bot.ports",
        "bot.intake",
        "bot.runbooks",
        "bot.incidents",
        "bot.store",
    },
    "bot.drafts": {"bot.core", "bot.postmortem"},
    "bot.commands": {"bot.core", "bot.runbooks", "bot.incidents", "bot.store"},
}

#: Sub-packages held to less than their package: the sender parsers are pure.
LEAVES = {"bot.intake.alerts": set[str]()}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def core_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in BOT.rglob("*.py")
        if "versions" not in p.parts and "__pycache__" not in p.parts
    }


def imported_modules(path: Path, known: set[str] | None = None) -> set[str]:
    """Every module ``path`` imports, wherever the import is (also in functions and under
    ``TYPE_CHECKING``). ``from pkg import name`` names ``pkg.name`` when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            inside = subs & known if known is not None else set()
            found.update(inside)
            if len(inside) < len(subs):
                found.add(node.module)
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    if module in FOUNDATION or len(parts) == 1:
        return module
    return ".".join(parts[:2])


def import_graph() -> dict[str, set[str]]:
    modules = core_modules()
    known = set(modules)
    return {
        name: {m for m in imported_modules(path, known) if m in known and m != name}
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        unit = unit_of(module)
        for target in sorted(targets):
            other = unit_of(target)
            if other == unit or other in FOUNDATION:
                if unit in FOUNDATION and other not in FOUNDATION | {unit}:
                    bad.append(f"{module} -> {target}")
                continue
            if unit in FOUNDATION or other not in ALLOWED.get(unit, set()):
                bad.append(f"{module} -> {target} ({unit} may not import {other})")
        for leaf, allowed in LEAVES.items():
            if module == leaf or module.startswith(leaf + "."):
                outside = [t for t in targets if not t.startswith(leaf) and t not in FOUNDATION]
                outside = [t for t in outside if unit_of(t) not in allowed]
                bad.extend(f"{module} -> {t} ({leaf} imports only itself)" for t in outside)
    return bad


def test_no_module_under_bot_imports_slack_web_or_vendor_code() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in BOT.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert not offenders, offenders
    assert len(list(BOT.rglob("*.py"))) > 5  # the walk really saw the package


def test_importing_the_whole_core_loads_no_slack_or_web_module() -> None:
    modules = sorted(m for m, p in core_modules().items() if p.name != "env.py")
    script = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"


def test_every_package_of_the_core_has_a_place_in_the_diagram() -> None:
    units = {unit_of(m) for m in core_modules()} - FOUNDATION
    assert units == set(ALLOWED)


def test_packages_import_each_other_only_as_the_diagram_says() -> None:
    assert direction_violations(import_graph()) == []


def test_there_are_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_each_package_says_what_it_owns_and_may_import() -> None:
    for unit in ALLOWED:
        path = REPO / unit.replace(".", "/")
        init = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init.relative_to(REPO)} has no docstring"
        if path.is_dir() and unit != "bot.runbooks" and unit != "bot.postmortem":
            assert "may import" in doc.lower(), f"{unit}: say what it may import"


def test_the_readme_lists_the_same_directions() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    listed: dict[str, set[str]] = {}
    for match in re.finditer(r"^- `(bot\.\w+)` → (.+)$", section, re.M):
        targets = re.findall(r"`(bot\.\w+)`", match[2])
        listed[match[1]] = set(targets)
    assert listed == ALLOWED


# -- the checks can fail ---------------------------------------------------------------------


def test_checker_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from slack_sdk.web import WebClient\nimport starlette.routing\n")
    assert imported_modules(bad) == {"slack_sdk.web", "starlette.routing"}


def test_checker_would_catch_a_wrong_direction_and_a_circle() -> None:
    graph = {
        "bot.store.db": {"bot.delivery.outbox"},
        "bot.delivery.outbox": {"bot.store.db"},
        "bot.intake.alerts.model": {"bot.store.models"},
        "bot.errors": {"bot.store.db"},
    }
    bad = direction_violations(graph)
    assert "bot.store.db -> bot.delivery.outbox (bot.store may not import bot.delivery)" in bad
    assert any("bot.intake.alerts imports only itself" in b for b in bad)
    assert "bot.errors -> bot.store.db (bot.errors may not import bot.store)" in bad
    assert "bot.delivery.outbox -> bot.store.db" not in bad
    assert cycles(graph) == [["bot.delivery.outbox", "bot.store.db"]]


def test_checker_sees_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden.py"
    hidden.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bot.runbooks.model import Step\n"
        "def f():\n    from bot.delivery.worker import DeliveryWorker\n"
    )
    assert {"bot.runbooks.model", "bot.delivery.worker"} <= imported_modules(hidden)
