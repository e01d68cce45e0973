"""auditor remediate: re-run the later stages without the blamed one, measured before/after."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from auditor import api
from auditor.cli.common import allow_task_option, console, db_option, wait_option


def remediate(
    version: str = typer.Option(..., "--version", help="MODEL@VERSION to remediate."),
    stage: str = typer.Option(..., "--stage", help="Id of the stage to remove."),
    behaviours: str = typer.Option(..., "--behaviours",
                                   help="module:function returning the behaviours to measure."),
    new_version: str = typer.Option(None, "--new-version",
                                    help="Version name of the result (default VERSION-no-STAGE)."),
    out: Path = typer.Option(None, "--out", help="Folder for the new checkpoints."),
    allow_task: list[str] = allow_task_option(),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Record a new version trained without STAGE and show each behaviour before and after."""
    result = api.remediate(version, stage, db=db, behaviours=behaviours,
                           new_version=new_version, out=out, wait=wait,
                           allow_tasks=tuple(allow_task or ()))
    table = Table(title=f"{result.original} → {result.remediated} (without {result.dropped_stage})")
    for column in ("behaviour", "before", "after", "change"):
        table.add_column(column, justify="right" if column != "behaviour" else "left")
    for name, before in result.before.items():
        after = result.after[name]
        table.add_row(name, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
    console.print(table)
    console.print(f"recorded {result.remediated} in {db}; checkpoints in {result.folder}")
