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
from auditor.cli.common import console, db_option, err_console, styled, wait_option

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
    certify: bool = typer.Option(False, "--certify", help="Certified verdicts: calibrate the "
                                 "estimate on replayed stages and replay what close rows need "
                                 "(docs/certify.md)."),
    budget: str = typer.Option(None, "--budget", help="With --certify: replay budget in "
                               "training steps, or N% of the version's own training."),
    replay_mode: str = typer.Option("decisive", "--replay", help="With --certify: decisive, "
                                    "sample, all or none."),
    executor: str = typer.Option("local", "--executor", help="With --certify: where replays "
                                 "run, local or ray."),
    force: bool = typer.Option(False, "--force", help="With --certify: replay units even when "
                               "stored."),
    db: Path = db_option(),
    wait: float = wait_option(),
) -> None:
    """Check a version's stage scores against a policy: exit 0 pass, 1 fail, 2 error."""
    if certify:
        result, summary = api.certified_gate(
            version, db=db, policy=policy, estimator=estimator, executor=executor,
            replay={"mode": replay_mode, "budget": _budget(budget)},
            allow_indeterminate=allow_indeterminate, wait=wait, force=force,
            say=lambda line: err_console.print(line, markup=False, soft_wrap=True),
            progress=not as_json)
    else:
        result, summary = api.gate(version, db=db, policy=policy, estimator=estimator,
                                   allow_indeterminate=allow_indeterminate, wait=wait), None
    if junit is not None:
        from auditor.policy.junit import write_junit

        write_junit(result, junit)
    if as_json:
        document = result.to_json()
        if summary is not None:
            document["certify"] = certify_json(summary, result)
        print(json.dumps(document, indent=2, sort_keys=True, default=str))
    else:
        print_gate(result)
        if summary is not None:
            print_certify(summary, result)
    raise typer.Exit(result.exit_code)


def _budget(text: str | None):
    if text is None or text.endswith("%"):
        return text
    try:
        return int(text.replace(",", "").replace("_", ""))
    except ValueError:
        from auditor.errors import InputError

        raise InputError(f"--budget {text!r}: give training steps (e.g. 5000) or a share of "
                         "the version's training (e.g. 50%)") from None


def certify_json(summary, result: GateResult) -> dict:
    cal = summary.calibration
    return {"calibration_id": summary.calibration_id,
            "fallback_calibration_id": summary.fallback_id,
            "calibration": None if cal is None else {
                "source": cal.source, "estimator": cal.estimator, "alpha": cal.alpha,
                "coverage_target": cal.target,
                "normalisation": cal.normalisation, "pooling": cal.pooling,
                "strata": cal.strata, "units": [list(u) for u in cal.units],
                "q": {k: (v if v != float("inf") else None) for k, v in cal.q.items()},
                "n": cal.n, "measured_coverage": cal.coverage},
            "sampled_units": [[u.version, u.stage_id, u.cost] for u in summary.sampled],
            "replayed_units": [[u.version, u.stage_id, u.cost] for u in summary.replayed],
            "reused_units": [[u.version, u.stage_id] for u in summary.reused],
            "replayed_steps": summary.spent, "full_replay_steps": summary.full,
            "budget_steps": None if summary.budget == float("inf") else summary.budget,
            "decided_by": summary.counts(result.rows()), "messages": summary.messages}


def print_certify(summary, result: GateResult) -> None:
    from auditor.certify.table import fmt_steps

    counts = summary.counts(result.rows())
    cal = summary.calibration
    for message in summary.messages:
        console.print(message, markup=False)
    if cal is not None:
        bands = ", ".join(f"{k} ±{v:.3g}×scale" for k, v in sorted(cal.q.items()))
        origin = f"{cal.n_units} replayed unit(s)" if cal.source == "replay" else \
            "the benchmark scenarios (not calibrated on this model)"
        console.print(f"calibration {summary.calibration_id[:12]}: {origin}, "
                      f"{cal.normalisation} scale, coverage target "
                      f"{cal.target:.0%}; bands {bands}", markup=False, soft_wrap=True)
    if summary.reused:
        console.print("reused stored replays: " + ", ".join(
            f"{u.version} -{u.stage_id}" for u in summary.reused), markup=False, soft_wrap=True)
    console.print(f"certified: {counts['exact']} row(s) decided by exact replay, "
                  f"{counts['estimate']} by an estimate whose band clears the threshold, "
                  f"{counts['uncalibrated']} uncalibrated, {counts['indeterminate']} "
                  f"indeterminate; replayed {fmt_steps(summary.spent)} of "
                  f"{fmt_steps(summary.full)} steps (budget {fmt_steps(summary.budget)})",
                  markup=False, soft_wrap=True)


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
    for column in ("rule", "behaviour", "stage", "observed", "evidence", "outcome", "reason"):
        table.add_column(column, overflow="fold")
    for row in rows:
        observed = "n/a" if row["observed"] is None else f"{row['observed']:.4g}"
        outcome = row["outcome"]
        reason = row["reason"] or ""
        if row["waiver_owner"]:
            reason = f"waived by {row['waiver_owner']} until {row['waiver_expiry']}: " \
                     f"{row['waiver_reason']}"
        table.add_row(row["rule_id"], row["behaviour"] or "-", row["stage_id"] or "-", observed,
                      row.get("evidence") or "-", styled(outcome, _STYLE[outcome]), reason)
    return table
