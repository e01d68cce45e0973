"""The rooms keep to their walls (docs/architecture.md): no room imports what it must not, no
two rooms import each other (directly or round a longer loop), the estimators' modules stay
small, and every command of the CLI is documented in the README."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"
README = PACKAGE.parent / "README.md"
FORBIDDEN = {
    "lineage": {"auditor.store", "ray", "auditor.report", "duckdb", "auditor.estimators"},
    "estimators": {"duckdb", "ray", "jinja2", "weasyprint", "pyhanko", "auditor.store",
                   "auditor.report", "auditor.policy", "auditor.execution"},
    "behaviours": {"auditor.store", "ray", "duckdb"},
    "store": {"torch", "ray"},
    "execution": {"auditor.report", "auditor.policy"},
    "policy": {"torch", "ray"},
    "report": {"torch", "ray"},
    "integrations": {"auditor.store", "ray", "auditor.report", "duckdb", "auditor.policy",
                     "auditor.execution", "auditor.estimators"},
    "serve": {"torch", "ray", "auditor.estimators"},
    "certify": {"auditor.report", "auditor.cli", "torch", "ray"},
}


MAX_LINES = 300  # per module of auditor/estimators (docs/architecture.md)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from auditor import
    x`` counts as ``auditor.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "auditor":
                found.update(f"auditor.{alias.name}" for alias in node.names)
    return found


def rooms() -> dict[str, list[Path]]:
    """Room name -> its files: each package and each module directly under auditor/."""
    found: dict[str, list[Path]] = {}
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            found[path.name] = sorted(path.rglob("*.py"))
        elif path.suffix == ".py" and path.stem not in ("__init__", "__main__"):
            found[path.stem] = [path]
    return found


def room_graph() -> dict[str, set[str]]:
    """Room -> the other rooms it imports."""
    known = rooms()
    graph: dict[str, set[str]] = {room: set() for room in known}
    for room, paths in known.items():
        for path in paths:
            for name in imports(path):
                parts = name.split(".")
                if parts[0] == "auditor" and len(parts) > 1 and parts[1] in known \
                        and parts[1] != room:
                    graph[room].add(parts[1])
    return graph


def test_no_two_rooms_import_each_other():
    graph = room_graph()
    cycles = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            room = stack.pop()
            if room == start:
                cycles.append(start)
                break
            if room not in seen:
                seen.add(room)
                stack.extend(graph[room])
    assert not cycles, f"rooms on an import cycle: {sorted(cycles)} ({graph})"


def test_the_estimators_import_the_lineage_and_not_the_other_way():
    graph = room_graph()
    assert "lineage" in graph["estimators"] and "estimators" not in graph["lineage"]


def test_estimator_modules_stay_small():
    long = {str(p.relative_to(PACKAGE)): n for p in (PACKAGE / "estimators").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_nothing_it_must_not(room):
    offences = []
    for path in sorted((PACKAGE / room).rglob("*.py")):
        for name in imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[room]):
                offences.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not offences, offences


def test_every_cli_command_is_in_the_readme():
    from auditor.cli import app

    text = README.read_text()
    names = [command.name or command.callback.__name__ for command in app.registered_commands]
    names += [group.name for group in app.registered_groups]
    missing = [name for name in names if f"`auditor {name}" not in text]
    assert not missing, f"commands missing from README.md: {missing}"
