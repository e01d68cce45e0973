"""The rooms keep to their walls (docs/architecture.md): no room imports what it must not, and
every command of the CLI is documented in the README."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"
README = PACKAGE.parent / "README.md"
FORBIDDEN = {
    "lineage": {"auditor.store", "ray", "auditor.report", "duckdb"},
    "estimators": {"duckdb", "ray", "jinja2", "weasyprint", "pyhanko", "auditor.store",
                   "auditor.report", "auditor.policy", "auditor.execution"},
    "behaviours": {"auditor.store", "ray", "duckdb"},
    "store": {"torch", "ray"},
    "execution": {"auditor.report", "auditor.policy"},
    "policy": {"torch", "ray"},
    "report": {"torch", "ray"},
    "integrations": {"auditor.store", "ray", "auditor.report", "duckdb", "auditor.policy",
                     "auditor.execution", "auditor.estimators"},
}


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_room_imports_nothing_it_must_not(room):
    offences = []
    for path in sorted((PACKAGE / room).glob("*.py")):
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
