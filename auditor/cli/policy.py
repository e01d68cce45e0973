"""auditor gate | policy check: release gating on a YAML policy.

``gate`` exits 0 on PASS / PASS-WITH-WAIVERS, 1 on FAIL (and on INDETERMINATE unless
``--allow-indeterminate``), 2 on error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from auditor import api
from auditor.cli.common import console, db_option, styled, wait_option

# the policy engine (auditor.policy loads evaluate) loads when a command needs it, not at start-up
if TYPE_CHECKING:
    from auditor.policy.outcomes import GateResult

app = typer.Typer(help="Policy files: validate them.", no_args_is_help=True)

_STYLE = {"PASS": "green", "PASS-WITH-WAIVERS": "yellow", "FAIL": "red", "INDETERMINATE": "red",
          "pass": "green", "fail": "red", "warn": "yellow", "info": "cyan",
          "indeterminate": "magenta", "waived": "yellow"}
SHOWN_ROWS = 40  # rows of the detail table; --json has them all


@app.command("check")
def check(file: Path = typer.Argument(..., help="Policy YAML file.")) -> None:
    """Validate a policy without running anything: exit 0 when valid, 2 with file:line: key."""
    loaded = api.check_policy(file)
    policy = loaded.policy
    console.print(f"{file}: valid policy {policy.policy} {policy.version}, "
                  f"{len(policy.rules)} rule(s), {len(policy.waivers)} waiver(s), "
                  f"hash {loaded.hash}", markup=False, soft_wrap=True)


def gate(
    version: str = typer.Option(..., "--version", help="MODEL@VERSION to gate."),
    policy: Path = typer.Option(None, "--policy", help="Policy YAML (default: the shipped "
                                "policies/default.yaml)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON only."),
    junit: Path = typer.Option(None, "--junit", metavar="FILE", help="Write JUnit XML to FILE."),
    allow_indeterminate: bool = typer.Option(
        False, "--allow-indeterminate", help="Let INDETERMINATE pass (exit 0)."),
    estimator: str = typer.Option(None, "--estimator", help="Gate on this estimator's scores "
                                  "(default: the policy's, else the latest scored)."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Check a version's stage scores against a policy: exit 0 pass, 1 fail, 2 error."""
    result = api.gate(version, db=db, policy=policy, estimator=estimator,
                      allow_indeterminate=allow_indeterminate, wait=wait)
    if junit is not None:
        from auditor.policy.junit import write_junit

        write_junit(result, junit)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print_gate(result)
    raise typer.Exit(result.exit_code)


def print_gate(result: GateResult) -> None:
    from auditor.policy.outcomes import OUTCOME_ORDER

    console.print(rule_table(result))
    details = sorted((r for r in result.rows() if r["outcome"] != "pass"),
                     key=lambda r: OUTCOME_ORDER.index(r["outcome"]))
    if details:
        console.print(detail_table(details[:SHOWN_ROWS]))
    if len(details) > SHOWN_ROWS:
        console.print(f"… {len(details) - SHOWN_ROWS} more rows (use --json for all)")
    for waiver in result.expired_waivers:
        console.print(f"expired waiver (not applied): rule {waiver['rule']}, owner "
                      f"{waiver['owner']}, expired {waiver['expires']}", markup=False)
    console.print(Text.assemble(
        styled(result.verdict, _STYLE[result.verdict]),
        f" {result.key} — policy {result.policy_id} {result.policy_version} "
        f"({result.policy_hash[:12]}), scores {result.estimator or '-'}/"
        f"{result.config_hash or '-'}, previous {result.previous or '-'}"), soft_wrap=True)


def rule_table(result: GateResult) -> Table:
    from auditor.policy.outcomes import rows_by_rule, worst_outcome

    table = Table(title=f"{result.key}: policy {result.policy_id}")
    for column in ("rule", "severity", "metric", "threshold", "rows", "outcome"):
        table.add_column(column)
    for rule_id, rows in rows_by_rule(result.rows()).items():
        worst = worst_outcome(r["outcome"] for r in rows)
        first = rows[0]
        table.add_row(rule_id, first["severity"], first["metric"],
                      f"{first['comparator']} {first['threshold']:g}", str(len(rows)),
                      styled(worst, _STYLE[worst]))
    return table


def detail_table(rows: list[dict]) -> Table:
    table = Table(title="rows that did not simply pass")
    for column in ("rule", "behaviour", "stage", "observed", "outcome", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        observed = "n/a" if row["observed"] is None else f"{row['observed']:.4g}"
        outcome = row["outcome"]
        reason = row["reason"] or ""
        if row["waiver_owner"]:
            reason = f"waived by {row['waiver_owner']} until {row['waiver_expiry']}: " \
                     f"{row['waiver_reason']}"
        table.add_row(row["rule_id"], row["behaviour"] or "-", row["stage_id"] or "-", observed,
                      styled(outcome, _STYLE[outcome]), reason)
    return table
