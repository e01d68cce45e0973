"""Traceability sections of a report: the EU AI Act Annex IV cross-reference, how to reproduce
the numbers, and how long the report and its logs are kept.

Section keys name the report's sections (the templates turn them into links); ``None`` means the
point is outside what an audit of training stages can answer, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Art. 18(1): technical documentation kept 10 years after the system is placed on the market;
# Art. 19(1): automatically generated logs kept at least 6 months.
DOCUMENTATION_YEARS = 10
LOG_MONTHS = 6


@dataclass(frozen=True)
class AnnexPoint:
    point: str
    requirement: str
    section: str | None  # a report section key, None: outside this report
    how: str


ANNEX_IV: tuple[AnnexPoint, ...] = (
    AnnexPoint("1(a)", "Intended purpose, provider, version", "responsibilities",
               "provider, intended uses and users from the report settings; versions audited"),
    AnnexPoint("1(b)–(h)", "Interaction with other systems, hardware, market forms, user "
               "interface, instructions for use", None,
               "outside this report: product documentation of the provider"),
    AnnexPoint("2(a)", "Development methods and steps, use of pre-trained systems and "
               "third-party tools", "lineage",
               "stage graph: every stage, its kind, inputs and outputs"),
    AnnexPoint("2(b)", "Design choices, optimisation, trade-offs", "lineage",
               "hyperparameters of every stage (optimiser, schedule, steps)"),
    AnnexPoint("2(c)", "System architecture and computational resources", "system",
               "parameter count, task; hardware and environment in the appendices"),
    AnnexPoint("2(d)", "Data requirements, provenance, training data sets", "lineage",
               "datasets per stage: digest, records, provenance, licence"),
    AnnexPoint("2(e)", "Human oversight measures", None,
               "outside this report: the provider's oversight design"),
    AnnexPoint("2(f)", "Pre-determined changes", "changes", "change log against the previous "
               "audited version"),
    AnnexPoint("2(g)", "Validation and testing: metrics, test logs, test reports dated and "
               "signed by the responsible persons", "findings",
               "behaviour definitions, results, policy evaluation; this signed, timestamped "
               "report"),
    AnnexPoint("2(h)", "Cybersecurity measures", None,
               "outside this report (only the report's own integrity: signature, hashes)"),
    AnnexPoint("3", "Capabilities, limitations, foreseeable unintended outcomes, input "
               "specifications", "limitations",
               "measured behaviours, limitations of the attribution method"),
    AnnexPoint("4", "Appropriateness of the performance metrics", "behaviours",
               "behaviour definitions: direction, description, metric, probe set digest"),
    AnnexPoint("5", "Risk management system (Art. 9)", "risk",
               "blamed stages, remediation and its measured effect, residual risk"),
    AnnexPoint("6", "Relevant changes through the life cycle", "changes",
               "change log; revision history when a report supersedes another"),
    AnnexPoint("7", "Harmonised standards applied", None, "outside this report"),
    AnnexPoint("8", "EU declaration of conformity", None, "outside this report"),
    AnnexPoint("9", "Post-market monitoring (Art. 72)", "logging",
               "quarterly reports over every audited version; the hash-chained event log"),
)


def annex_iv() -> list[AnnexPoint]:
    return list(ANNEX_IV)


def _seeds(runs: list[dict[str, Any]]) -> list[str]:
    found = []
    for run in runs:
        config = run.get("config") or {}
        for key in ("seed", "seeds"):
            if key in config:
                found.append(f"{run['kind']} run {run['run_id'][:12]}: {key} {config[key]}")
    return found


def reproduce(ctx) -> dict[str, Any]:
    """Commands, seeds and versions that reproduce this report's numbers (no machine paths:
    the store is named by its file name only)."""
    versions = [v.key for v in ctx.versions]
    commands = []
    for key in versions[:3]:
        commands += [f"auditor attribute --version {key} --db STORE",
                     f"auditor gate --version {key} --db STORE"]
    if len(versions) > 3:
        commands.append(f"… the same for the other {len(versions) - 3} versions "
                        "(or auditor audit SPEC for all at once)")
    subject = f"--version {ctx.subject}" if ctx.kind == "release-gate" else \
        f"--period {ctx.subject}"
    commands += [f"auditor report {subject} --db STORE --p12 SIGNER.p12 --out reports/",
                 "auditor verify REPORT.pdf --trust ROOT.pem --db STORE"]
    seeds = [s for v in ctx.versions for s in _seeds(v.runs)]
    env = ctx.environment or {}
    packages = env.get("packages") or {}
    return {"commands": commands, "seeds": seeds or ["no seed is recorded in the run "
                                                     "configurations"],
            "tool": f"{ctx.tool['name']} {ctx.tool['version']} (commit {ctx.tool['commit']})",
            "python": env.get("python", "not recorded"),
            "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items())[:12])
            or "see environment.json"}


def retention() -> list[str]:
    return [f"This report is technical documentation: keep it and its embedded files for "
            f"{DOCUMENTATION_YEARS} years after the system is placed on the market or put into "
            "service (EU AI Act Art. 18(1)).",
            f"The store's event log and run records are automatically generated logs: keep them "
            f"at least {LOG_MONTHS} months (Art. 19(1)), and as long as this report cites them "
            f"to let `auditor verify --db` check it (recommended: {DOCUMENTATION_YEARS} years).",
            "The signature is timestamped and carries its validation data when signed with "
            "--tsa-url and --level B-LT (PAdES B-T / B-LT), so it stays verifiable after the "
            "signer's certificate expires."]


def revision_history(recorded: list[dict[str, Any]], kind: str, file_name: str) -> list[dict]:
    """Earlier reports of the same type and subject (same file name) recorded in the store,
    oldest first: this report supersedes them. Only names, ids, dates and hashes are shown."""
    from pathlib import PurePath

    rows = []
    for row in recorded:
        if row["kind"] == kind and PurePath(str(row["path"])).name == file_name:
            rows.append({"report_id": row["report_id"], "created_at": str(row["created_at"])[:19],
                         "sha256": row["sha256"], "signer": row.get("signer") or "unsigned"})
    return rows
