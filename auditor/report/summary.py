"""Page 1 of a report: an executive summary a non-specialist can act on.

The decision, the stages to blame and by how much (with the kind of evidence behind each
number), the remediation and its measured effect, the residual risk, who is accountable, and
what to do next. Built only from the report context (``auditor.report.context``) and the report
settings; nothing is guessed — a missing fact reads "not provided" or "none recorded".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from auditor.report.settings import ReportSettings, responsibilities

FAILING = ("fail", "indeterminate")


@dataclass(frozen=True)
class Blame:
    version: str
    stage_id: str
    stage_kind: str
    behaviour: str
    rule_id: str
    share: float | None  # the stage's share of the behaviour's harm (0–1)
    effect: float | None
    evidence: str  # exact / certified / uncalibrated … (the certified-verdicts evidence kind)

    @property
    def share_text(self) -> str:
        if self.share is None or not math.isfinite(self.share):
            return "share not finite"
        return f"{self.share:.0%} of its harm"


@dataclass(frozen=True)
class Fix:
    version: str
    remediated: str
    dropped_stage: str
    changes: list[tuple[str, float, float]]  # behaviour, before, after (measured)
    verdict: str | None  # the remediated version's verdict when this report covers it


@dataclass
class ExecutiveSummary:
    verdict: str
    decision: str
    blamed: list[Blame] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    residual: list[str] = field(default_factory=list)
    accountable: list[tuple[str, str]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def _decision(ctx) -> str:
    failing = [v.key for v in ctx.failing_versions]
    verdict = ctx.verdict
    count = len(ctx.versions)
    if verdict == "FAIL":
        names = ", ".join(failing)
        return (f"Do not release {names}: {'it fails' if len(failing) == 1 else 'they fail'} "
                f"blocking rules of the policy." if count == 1 or len(failing) < count else
                f"Do not release any of the {count} versions: each fails the policy.")
    if verdict == "INDETERMINATE":
        return (f"No release decision is possible for {', '.join(failing)}: some measurements "
                "are not finite numbers; re-run the audit before deciding.")
    if verdict == "PASS-WITH-WAIVERS":
        return ("Release is allowed only under the waivers listed below, each approved by a "
                "named owner until its expiry date.")
    if verdict == "PASS":
        return "Release is allowed: every rule of the policy passes." if count == 1 else \
            f"All {count} versions pass every rule of the policy."
    return "No policy has been evaluated: no release decision can be taken from this report."


def _stage_row(version, behaviour: str, stage_id: str) -> tuple[dict[str, Any] | None, str]:
    for b in version.behaviours:
        if b["name"] == behaviour:
            for s in b["stages"]:
                if s["stage_id"] == stage_id:
                    return s, b["direction"]
    return None, ""


def _evidence_kind(stage: dict[str, Any] | None) -> str:
    """"exact (replayed)", "estimate ± w (calibrated)" or "estimate (uncalibrated)"."""
    mark = (stage or {}).get("evidence_mark")
    if mark == "exact":
        return "exact (replayed)"
    if isinstance(mark, str) and mark.startswith("±"):
        return f"estimate {mark} (calibrated band)"
    if mark:
        return f"estimate ({mark})"
    evidence = (stage or {}).get("evidence")
    if isinstance(evidence, dict) and evidence.get("kind"):
        return str(evidence["kind"])
    if isinstance(evidence, str) and evidence:
        return evidence
    return "estimate (uncalibrated)"


def blamed_stages(ctx) -> list[Blame]:
    """Each failing stage-level policy row, with the stage's share and effect and the evidence
    kind behind them; then, for failing model-level rules, the behaviour's top stage."""
    out: list[Blame] = []
    seen: set[tuple[str, str, str]] = set()
    for v in ctx.failing_versions:
        for rule in v.policy["rules"]:
            for row in rule["failing"]:
                if row["outcome"] not in FAILING:
                    continue
                behaviour = row["behaviour"] or ""
                stage_id = row["stage_id"]
                if not stage_id:
                    top = next((b["top"] for b in v.behaviours if b["name"] == behaviour), [])
                    stage_id = top[0]["stage_id"] if top else None
                if not stage_id or (v.key, stage_id, behaviour) in seen:
                    continue
                seen.add((v.key, stage_id, behaviour))
                stage, _ = _stage_row(v, behaviour, stage_id)
                out.append(Blame(v.key, stage_id, (stage or {}).get("stage_kind", "-"),
                                 behaviour, row["rule_id"], (stage or {}).get("share"),
                                 (stage or {}).get("effect"), _evidence_kind(stage)))
    return out


def remediations(ctx) -> list[Fix]:
    verdicts = {v.key: v.verdict for v in ctx.versions}
    fixes = []
    for v in ctx.versions:
        for done in getattr(v, "remediations", []) or []:
            after = done.get("after", {}) or {}
            before = done.get("before", {}) or {}
            changes = [(name, before.get(name, math.nan), value) for name, value in after.items()]
            fixes.append(Fix(v.key, done.get("to", "-"), done.get("dropped_stage", "-"), changes,
                             verdicts.get(done.get("to"))))
    return fixes


def _residual(ctx, fixes: list[Fix], blamed: list[Blame]) -> list[str]:
    risks = []
    for v in ctx.versions:
        for w in v.policy["waivers"]:
            risks.append(f"{v.key}: rule {w['rule_id']} is waived (owner {w['waiver_owner']}, "
                         f"until {w['waiver_expiry']}): the risk it guards stays open.")
    uncalibrated = sorted({b.evidence for b in blamed if "uncalibrated" in b.evidence})
    if uncalibrated:
        risks.append("Stage blame rests on first-order estimates without a calibration "
                     "bound: treat the shares as rankings, not exact fractions.")
    if not fixes and blamed:
        risks.append("No remediation has been measured: the harm remains in every failing "
                     "version.")
    for fix in fixes:
        if fix.verdict is None:
            risks.append(f"{fix.remediated} has not been evaluated against the policy in this "
                         "report.")
    nonfinite = [v.key for v in ctx.versions if v.verdict == "INDETERMINATE"]
    if nonfinite:
        risks.append(f"Not finite measurements in {', '.join(nonfinite)}.")
    return risks or ["No open risk is recorded by this audit; it covers only the behaviours "
                     "and rules listed in this report."]


def _next_steps(ctx, blamed: list[Blame], fixes: list[Fix], settings: ReportSettings) -> list[str]:
    steps = []
    fixed = {f.version for f in fixes}
    for fix in fixes:
        if fix.verdict in ("PASS", "PASS-WITH-WAIVERS"):
            steps.append(f"Release {fix.remediated} (without stage {fix.dropped_stage}) instead "
                         f"of {fix.version}: it passes the policy.")
        else:
            steps.append(f"Run the release gate on {fix.remediated} before releasing it.")
    for b in blamed:
        if b.version not in fixed:
            steps.append(f"Remove or re-train stage {b.stage_id} of {b.version} "
                         f"(auditor remediate {b.version} {b.stage_id}) and re-audit.")
            fixed.add(b.version)
    if not settings.independent_reviewer:
        steps.append("Name an independent reviewer in the report settings (auditor.yaml).")
    if not (settings.approval and settings.approval.by):
        steps.append("Record the release approval in the report settings.")
    return list(dict.fromkeys(steps)) or ["None: keep auditing new versions."]


def executive_summary(ctx, settings: ReportSettings | None = None) -> ExecutiveSummary:
    settings = settings or ReportSettings()
    blamed = blamed_stages(ctx)
    fixes = remediations(ctx)
    rows = {r.label: r.value for r in responsibilities(settings)}
    accountable = [(label, rows[label]) for label in
                   ("Provider", "Accountable owner", "Independent reviewer", "Approval")]
    accountable.append(("Signed by", ctx.signer))
    return ExecutiveSummary(ctx.verdict, _decision(ctx), blamed, fixes,
                            _residual(ctx, fixes, blamed), accountable,
                            _next_steps(ctx, blamed, fixes, settings))
