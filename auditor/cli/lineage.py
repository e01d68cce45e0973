"""auditor lineage import|show|export."""

from __future__ import annotations

import typer

app = typer.Typer(help="Record, import, show and export model lineage.", no_args_is_help=True)
