"""auditor attribute (one version) and auditor audit (many versions, local or on Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from auditor import api
from auditor.cli.common import (
    allow_task_option,
    console,
    db_option,
    parse_settings,
    settings_option,
    wait_option,
)
from auditor.errors import ExecutionError, InputError

# the registered estimators (tests/estimators/test_registry.py holds this to the registry; the
# CLI does not import torch to list them)
ESTIMATOR_NAMES = ("aa", "aa-hessian", "aa-ggn", "naive", "tracin", "replay")
ESTIMATOR_HELP = (f"Estimator: {ESTIMATOR_NAMES[0]} (default), {', '.join(ESTIMATOR_NAMES[1:-1])} "
                  f"or {ESTIMATOR_NAMES[-1]} (docs/estimators.md).")


def _executor_option(default: str | None):
    return typer.Option(default, "--executor", help="local (in-process) or ray.")


def _address_option():
    return typer.Option(None, "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                        "(default: start a local Ray instance).")


def _gpus_option():
    return typer.Option(None, "--num-gpus", help="GPUs per Ray task (default: 1 when the "
                        "cluster has GPUs, else 0).")


def _retries_option(default: int | None):
    return typer.Option(default, "--max-retries", help="Retries of a task whose worker died.")


def attribute(
    version: str = typer.Option(..., "--version", help="MODEL@VERSION to attribute."),
    behaviours: str = typer.Option(None, "--behaviours",
                                   help="module:function returning the behaviours to attribute."),
    estimator: str = typer.Option("aa", "--estimator", help=ESTIMATOR_HELP),
    setting: list[str] = settings_option(),
    executor: str = _executor_option("local"),
    address: str = _address_option(),
    num_gpus: float = _gpus_option(),
    max_retries: int = _retries_option(3),
    allow_task: list[str] = allow_task_option(),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Attribute one version's behaviours to its stages and store the scores."""
    summary = api.attribute_version(version, db=db, estimator=estimator, behaviours=behaviours,
                                    settings=parse_settings(setting), executor=executor,
                                    address=address, num_gpus=num_gpus,
                                    max_retries=max_retries, wait=wait,
                                    allow_tasks=tuple(allow_task or ()))
    _print_summary(summary, db)


def audit(
    spec: Path = typer.Argument(None, help="The audit spec (audit.yaml); without it, give "
                                "--period and --behaviours."),
    period: str = typer.Option(None, "--period", help="Audit the versions of this period "
                               "(e.g. 2026-Q4) instead of the spec's."),
    behaviours: str = typer.Option(None, "--behaviours", help="module:function returning the "
                                   "behaviours (when no spec is given)."),
    estimator: str = typer.Option("aa", "--estimator",
                                  help=f"{ESTIMATOR_HELP} When no spec is given."),
    setting: list[str] = settings_option(),
    executor: str = _executor_option(None),
    address: str = _address_option(),
    num_gpus: float = _gpus_option(),
    max_retries: int = _retries_option(None),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    force: bool = typer.Option(False, "--force", help="Recompute items (and replay units) even "
                               "when stored."),
    allow_task: list[str] = allow_task_option(),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Attribute every version the spec selects; items already stored are skipped (resume).
    With the spec's replay section, every version also gets a certified gate."""
    if spec is None:
        from auditor.execution.spec import spec_from_options

        spec = spec_from_options(period, behaviours, estimator, parse_settings(setting))
    elif setting:
        raise InputError("--setting goes with --period and --behaviours; a spec sets "
                         "estimator_settings itself")
    summary = api.run_audit(spec, db=db, period=period, executor=executor, address=address,
                            num_gpus=num_gpus, max_retries=max_retries, wait=wait,
                            progress=not quiet, force=force,
                            say=None if quiet else _say,
                            allow_tasks=tuple(allow_task or ()))
    _print_summary(summary, db)
    _print_certified(summary)


def _say(line: str) -> None:
    from auditor.cli.common import err_console

    err_console.print(line, markup=False, soft_wrap=True)


def _print_certified(summary) -> None:
    if not summary.certified:
        return
    table = Table(title="certified verdicts")
    for column in ("version", "estimator", "verdict", "exact", "estimate", "indeterminate",
                   "replayed steps"):
        table.add_column(column)
    for key, estimator, result, certified in summary.certified:
        counts = certified.counts(result.rows())
        table.add_row(key, estimator, result.verdict, str(counts["exact"]),
                      str(counts["estimate"]), str(counts["indeterminate"]),
                      f"{certified.spent:,} of {certified.full:,}")
    console.print(table)


MAX_TABLE_ROWS = 60


def _effect_text(effect: float | None) -> str:
    if effect is None:
        return "-"
    return f"{effect:+.4g}" if math.isfinite(effect) else "NaN"


def _print_summary(summary, db: Path) -> None:
    table = Table(title="top-blamed stage per behaviour")
    for column in ("version", "estimator", "behaviour", "stage", "share", "effect"):
        table.add_column(column, justify="right" if column in ("share", "effect") else "left")
    for row in summary.blame[:MAX_TABLE_ROWS]:
        table.add_row(row.version, row.estimator, row.behaviour, row.stage_id or "-",
                      "-" if row.share is None else f"{row.share:.0%}",
                      _effect_text(row.effect))
    console.print(table)
    if len(summary.blame) > MAX_TABLE_ROWS:
        console.print(f"… {len(summary.blame) - MAX_TABLE_ROWS} more rows: see the store "
                      "(table stage_scores) or the report")
    not_finite = sorted({row.behaviour for row in summary.blame
                         if row.effect is not None and not math.isfinite(row.effect)})
    if not_finite:
        console.print(f"warning: NaN or infinite stage effects for {', '.join(not_finite)}: "
                      "a gate on them is INDETERMINATE", markup=False, soft_wrap=True)
    console.print(f"items: {summary.planned} planned, {summary.skipped} already stored, "
                  f"{summary.done} done, {summary.failed} failed; audit run "
                  f"{summary.audit_run_id} in {db}")
    if summary.skipped:
        console.print(f"reused {summary.skipped} stored item(s): same lineage, estimator "
                      "settings, task and behaviour code and probe data (--force recomputes)")
    if summary.failed:
        for label, error in summary.failures.items():
            console.print(f"failed: {label}: {error}", markup=False)
        raise ExecutionError(f"{summary.failed} work item(s) failed; re-run the same command to "
                             "retry them (stored items are skipped)")
