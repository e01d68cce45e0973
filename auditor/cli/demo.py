"""auditor demo: the whole pipeline on the built-in scenarios."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from auditor.cli.common import console, styled


def demo(
    out: Path = typer.Option(Path("auditor-demo"), "--out",
                             help="Folder for the demo's store, lineage, keys and reports; "
                                  "a second run reuses what is there."),
    executor: str = typer.Option("ray", "--executor",
                                 help="ray (a local Ray instance) or local (in-process)."),
) -> int:
    """Train the bundled scenarios, attribute, gate, remediate, sign reports and verify them."""
    from auditor.demo.pipeline import run_demo

    summary = run_demo(out, executor=executor,
                       announce=lambda step: console.print(
                           Text.assemble(styled("→", "bold cyan"), f" {step}")))
    _print_summary(summary)
    return 0 if summary.ok else 1


def _print_summary(summary) -> None:
    table = Table(title="auditor demo: certified verdicts on the default policy")
    for column in ("version", "verdict", "blamed stage", "on behaviours", "rows decided by"):
        table.add_column(column)
    for key, verdict in summary.verdicts.items():
        colour = "green" if verdict.startswith("PASS") else "red"
        stage, behaviours = summary.blamed.get(key, ("", []))
        counts = summary.evidence.get(key, {})
        decided = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        table.add_row(key, styled(verdict, colour), stage, ", ".join(behaviours), decided)
    console.print(table)
    for key, findings in summary.exact_findings.items():
        if findings:
            console.print(f"  {key}: exact (replayed) findings: {'; '.join(findings)}",
                          markup=False, soft_wrap=True)
    for remediation in summary.remediations:
        for name, before in remediation.before.items():
            after = remediation.after[name]
            console.print(f"  {remediation.remediated}: {name} {before:.3f} → {after:.3f}")
    for pdf in summary.reports:
        state = (styled("verified", "green") if summary.verified.get(pdf)
                 else styled("NOT verified", "red"))
        console.print(Text.assemble(f"report {pdf} — ", state))
    layout = summary.layout
    console.print(f"store {layout.db}; trust root {layout.keys / 'root.pem'}; "
                  f"{summary.seconds:.0f} s")
