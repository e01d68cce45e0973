"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console

from auditor.errors import InputError

DEFAULT_DB = "auditor.duckdb"


@dataclass
class _State:
    verbose: bool = False


state = _State()
# User text (stage kinds, waiver reasons, file names) is never console markup: "[/bold]" in a
# kind prints as itself. Styled output is built as rich Text (``styled``), never markup strings.
console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)


def styled(text: str, style: str):
    """``text`` in ``style``, as a rich Text (no markup parsing)."""
    from rich.text import Text

    return Text(text, style=style)


def db_option() -> Path:
    return typer.Option(Path(os.environ.get("AUDITOR_DB", DEFAULT_DB)), "--db",
                        help="DuckDB store file (env AUDITOR_DB).", show_default=True)


def wait_option() -> float:
    return typer.Option(0.0, "--wait", metavar="SECONDS",
                        help="Wait up to SECONDS for another auditor process to release the store.")


def allow_task_option():
    return typer.Option(None, "--allow-task", metavar="MODULE",
                        help="Let lineages name task entry points in MODULE (repeatable; env "
                        "AUDITOR_ALLOW_TASKS). A lineage is data: its task runs only when allowed.")


def settings_option():
    return typer.Option(None, "--setting", metavar="KEY=VALUE",
                        help="An estimator setting, e.g. plugin=true or curvature=fisher "
                        "(repeatable; values are read as YAML scalars).")


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """``["plugin=true", "mode=forward"]`` -> ``{"plugin": True, "mode": "forward"}``."""
    settings: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--setting {pair!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, dict | list):
            raise InputError(f"--setting {pair!r}: the value must be a single number, word or "
                             "boolean")
        settings[key.strip()] = value
    return settings
