"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

DEFAULT_DB = "auditor.duckdb"


@dataclass
class _State:
    verbose: bool = False


state = _State()
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def db_option() -> Path:
    return typer.Option(Path(os.environ.get("AUDITOR_DB", DEFAULT_DB)), "--db",
                        help="DuckDB store file (env AUDITOR_DB).", show_default=True)


def wait_option() -> float:
    return typer.Option(0.0, "--wait", metavar="SECONDS",
                        help="Wait up to SECONDS for another auditor process to release the store.")
