"""auditor log verify."""

from __future__ import annotations

import typer

app = typer.Typer(help="The hash-chained event log of the store.", no_args_is_help=True)
