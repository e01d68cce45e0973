"""auditor log verify | show: the hash-chained event log of the store."""

from __future__ import annotations

from pathlib import Path

import typer

from auditor.cli.common import console, db_option, wait_option
from auditor.store import LogVerification, Store

app = typer.Typer(help="The hash-chained event log of the store.", no_args_is_help=True)


@app.command("verify")
def verify(db: Path = db_option(), wait: float = wait_option()) -> None:
    """Check the hash chain and that the tables still hold the rows the log recorded.

    Exit 0 when intact, 1 when tampered (each problem listed), 2 on error.
    """
    with Store.open(db, read_only=True, wait=wait) as store:
        result = store.verify_log()
    _print_verification(db, result)
    raise typer.Exit(0 if result.ok else 1)


def _print_verification(db: Path, result: LogVerification) -> None:
    if result.ok:
        console.print(f"{db}: log intact, {result.events} events, head {result.head_hash}",
                      soft_wrap=True)
        return
    console.print(f"{db}: TAMPERED, {len(result.problems)} problem(s) in {result.events} events",
                  soft_wrap=True)
    for problem in result.problems:
        console.print(f"  - {problem}", markup=False, soft_wrap=True)


@app.command("show")
def show(db: Path = db_option(), wait: float = wait_option(),
         limit: int = typer.Option(20, "--limit", min=1, help="Show the latest N events.")) -> None:
    """List the latest events."""
    with Store.open(db, read_only=True, wait=wait) as store:
        events = store.events(limit=limit)
    for event in events:
        console.print(f"{event.seq:>6}  {event.at.isoformat(timespec='seconds')}  {event.actor}  "
                      f"{event.kind}  {event.subject or '-'}  {event.hash[:16]}",
                      markup=False, soft_wrap=True)
