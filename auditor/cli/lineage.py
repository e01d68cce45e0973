"""auditor lineage import|show|export."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from auditor import api
from auditor.cli.common import console, db_option, wait_option

app = typer.Typer(help="Record, import, show and export model lineage.", no_args_is_help=True)


@app.command("import")
def import_(
    spec: Path = typer.Argument(..., help="lineage.yaml listing the stages, checkpoints, "
                                          "optimizer, schedule and datasets (docs/lineage-import.md)."),
    db: Path = db_option(),
    wait: float = wait_option(),
    out: Path = typer.Option(None, help="Also write the lineage JSON here."),
) -> None:
    """Import the lineage of a model trained elsewhere (checkpoints are hashed and checked)."""
    version = api.import_lineage(spec, db=db, wait=wait, out=out)
    console.print(f"imported {version.key}: {len(version.stages)} stages, "
                  f"{version.parameters or 0:,} parameters -> {db}")


@app.command("add")
def add(
    folder: Path = typer.Argument(..., help="A Recorder's output folder (lineage.json and "
                                            "checkpoints/)."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Add a lineage recorded in a training loop to the store (checkpoint hashes and NaN/Inf
    are checked)."""
    version = api.record_lineage(folder, db=db, wait=wait)
    console.print(f"added {version.key}: {len(version.stages)} stages -> {db}")


@app.command("show")
def show(
    source: str = typer.Argument(..., help="MODEL@VERSION in the store, or a lineage.json / "
                                           "folder holding one."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Print a version's stages, optimizers, checkpoints and datasets."""
    version = api.load_version(source, db=db, wait=wait)
    table = Table(title=f"{version.key} ({version.parameters or 0:,} parameters)")
    for column in ("#", "stage", "kind", "optimizer", "steps", "convention", "start → end",
                   "datasets"):
        table.add_column(column)
    for index, stage in enumerate(version.stages):
        table.add_row(str(index), stage.id, stage.kind, stage.optimizer.kind, str(stage.steps),
                      stage.convention,
                      f"{stage.theta_start.sha256[:10]} → {stage.theta_end.sha256[:10]}",
                      ", ".join(d.name for d in stage.datasets) or "-")
    console.print(table)
    sketched = [(s.id, s.curvature_sketch) for s in version.stages if s.curvature_sketch]
    if sketched:
        spec = sketched[0][1]
        console.print(f"curvature sketch for aa-ggn projection: {', '.join(i for i, _ in sketched)}"
                      f" (projection={spec.dim}, samples={spec.samples}, sketch_seed={spec.seed})")


@app.command("export")
def export(
    source: str = typer.Argument(..., help="MODEL@VERSION in the store, or a lineage.json."),
    fmt: str = typer.Option("json", "--format", help="json (auditor lineage) or prov (W3C PROV-JSON)."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Write a version's lineage to stdout as JSON or W3C PROV-JSON."""
    version = api.load_version(source, db=db, wait=wait)
    if fmt == "prov":
        from auditor.lineage.prov import to_prov_json

        typer.echo(json.dumps(to_prov_json(version), indent=1))
    elif fmt == "json":
        typer.echo(version.model_dump_json(indent=1))
    else:
        raise typer.BadParameter("--format must be json or prov")
