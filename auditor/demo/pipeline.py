"""``auditor demo``: the whole pipeline on the built-in scenarios, end to end.

record (Recorder) → store → attribute (Ray or in-process) → gate (default policy) → remediate
the blamed stage → attribute and gate the fix → sign a quarterly and a gate report → verify them.
Every step reuses what a previous run left in the demo folder, so a second run is quick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from auditor.demo import charlm
from auditor.demo.plans import digits_versions, toxicity_versions
from auditor.demo.record import VersionPlan, record_version

PERIOD = "2026-Q4"
ESTIMATOR = "aa"
BEHAVIOURS = {"digits": "auditor.demo.digits:behaviours",
              "toxicity": "auditor.demo.toxicity:behaviours"}
PLANS: dict[str, Callable[[], list[VersionPlan]]] = {"digits": digits_versions,
                                                       "toxicity": toxicity_versions}
if charlm.available():  # the language-model scenario needs the hf extra
    BEHAVIOURS["charlm"] = charlm.BEHAVIOURS
    PLANS["charlm"] = charlm.versions
FIXED_VERSION = "v3"
Step = Callable[[str], None]  # announces the step about to run


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo keeps its files under one folder."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "auditor.duckdb"

    def lineage(self, model: str, version: str) -> Path:
        return self.root / "lineage" / f"{model}-{version}"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


@dataclass
class DemoSummary:
    layout: DemoLayout
    verdicts: dict[str, str] = field(default_factory=dict)  # key -> verdict
    blamed: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # key -> (stage, behaviours)
    remediations: list = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)
    verified: dict[Path, bool] = field(default_factory=dict)
    seconds: float = 0.0
    # certified gates: key -> rows decided by {"exact", "estimate", "indeterminate", ...}
    evidence: dict[str, dict[str, int]] = field(default_factory=dict)
    exact_findings: dict[str, list[str]] = field(default_factory=dict)  # key -> "rule stage"

    @property
    def ok(self) -> bool:
        return bool(self.reports) and all(self.verified.values())


def record_scenarios(layout: DemoLayout, announce: Step) -> list[str]:
    """Train every planned version under the Recorder (or reuse it) and add it to the store."""
    from auditor import api

    keys = []
    for model, plans in PLANS.items():
        for plan in plans():
            announce(f"record {model}@{plan.version}")
            folder = layout.lineage(model, plan.version)
            version = record_version(plan, folder)
            api.add_version(version, folder, db=layout.db)
            keys.append(version.key)
    return keys


def audit_period(layout: DemoLayout, runner) -> None:
    """Attribute every demo version of the period not yet scored (stored items are skipped)."""
    from auditor import api
    from auditor.execution.spec import AuditSpec

    spec = AuditSpec(name="demo", versions={"period": PERIOD}, behaviours=BEHAVIOURS,
                     estimators=[ESTIMATOR])
    api.run_audit(spec, db=layout.db, executor=runner, progress=True)


def gate_versions(layout: DemoLayout, keys: list[str], summary: DemoSummary,
                  runner=None, announce: Step | None = None) -> None:
    """A certified gate of each version on the default policy (docs/certify.md): the estimate's
    rows are decided on calibrated bands, the close ones and every blocking failure by exact
    replay."""
    from auditor import api

    for key in keys:
        result, certified = api.certified_gate(key, db=layout.db, executor=runner or "local",
                                               say=announce, progress=False)
        summary.verdicts[key] = result.verdict
        summary.evidence[key] = certified.counts(result.rows())
        summary.exact_findings[key] = [
            f"{r['rule_id']} {r['stage_id']} {r['behaviour']}" for r in result.rows()
            if r["outcome"] in ("fail", "warn") and r["evidence"] == "exact"]
        blamed = blamed_stage(result.rows())
        if blamed:
            summary.blamed[key] = blamed


def blamed_stage(rows: list[dict]) -> tuple[str, list[str]] | None:
    """The stage that failed the most blocking rules of a gate result, and the behaviours it
    failed them on."""
    failed: dict[str, list[str]] = {}
    for row in rows:
        if row["outcome"] == "fail" and row["severity"] == "block" and row["stage_id"]:
            failed.setdefault(row["stage_id"], []).append(row["behaviour"])
    if not failed:
        return None
    stage = max(failed, key=lambda s: len(failed[s]))
    return stage, sorted(set(failed[stage]))


def remediate_failures(layout: DemoLayout, summary: DemoSummary, announce: Step) -> list[str]:
    """Retrain each blocked version without its blamed stage, as version v3 (reused if stored)."""
    from auditor import api

    stored = _stored_remediations(layout)
    fixed = []
    for key, (stage, _) in summary.blamed.items():
        model = key.split("@")[0]
        target = f"{model}@{FIXED_VERSION}"
        if target in stored:
            summary.remediations.append(stored[target])
        else:
            announce(f"remediate {key}: retrain without {stage}")
            summary.remediations.append(api.remediate(
                key, stage, db=layout.db, behaviours=BEHAVIOURS[model],
                new_version=FIXED_VERSION, out=layout.lineage(model, FIXED_VERSION)))
        fixed.append(target)
    return fixed


def _stored_remediations(layout: DemoLayout) -> dict:
    """Remediations a previous run recorded, with the behaviours it measured before and after."""
    from auditor import api

    with api.open_store(layout.db, read_only=True) as store:
        configs = store.run_configs("remediation")
    found = {}
    for config in configs:
        found[config["to"]] = api.Remediation(
            config["from"], config["to"], config["dropped_stage"],
            layout.lineage(*config["to"].split("@")), config["before"], config["after"])
    return found


def demo_keys(layout: DemoLayout) -> dict[str, Path]:
    """A throwaway signing identity marked "demo" (made once); its passphrase in a 0600 file."""
    import secrets

    from auditor import api

    passphrase = layout.keys / "passphrase.txt"
    if not (layout.keys / "signer.p12").is_file():
        layout.keys.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(24)
        passphrase.touch(mode=0o600)
        passphrase.write_text(secret)
        api.init_keys(layout.keys, demo=True, name="auditor demo signer",
                      passphrase=secret.encode(), force=True)
    return {"p12": layout.keys / "signer.p12", "passphrase_file": passphrase,
            "trust": layout.keys / "root.pem"}


def sign_and_verify(layout: DemoLayout, summary: DemoSummary, gate_key: str,
                    announce: Step) -> None:
    from auditor import api

    keys = demo_keys(layout)
    for subject in ({"period": PERIOD}, {"version": gate_key}):
        announce(f"report {next(iter(subject.values()))}: render, sign, verify")
        signing = api.signer_settings(p12=keys["p12"], passphrase_file=keys["passphrase_file"])
        result = api.make_report(db=layout.db, out_dir=layout.reports, signing=signing,
                                 **subject)
        summary.reports.append(result.pdf)
        checked = api.verify_report(result.pdf, trust=keys["trust"], db=layout.db)
        summary.verified[result.pdf] = checked.valid


def run_demo(root: str | Path = "auditor-demo", *, executor: str = "ray",
             announce: Step | None = None) -> DemoSummary:
    """Run the whole pipeline in ``root``; returns what it found and made."""
    from auditor import api

    started = time.perf_counter()
    layout = DemoLayout(Path(root))
    layout.root.mkdir(parents=True, exist_ok=True)
    announce = announce or (lambda _: None)
    summary = DemoSummary(layout)
    keys = record_scenarios(layout, announce)
    announce(f"start the {executor} executor")
    runner = api.make_executor(executor)
    try:
        announce(f"attribute {len(keys)} versions with {ESTIMATOR}")
        audit_period(layout, runner)
        announce("certified gate of every version on the default policy")
        gate_versions(layout, keys, summary, runner, announce)
        fixed = remediate_failures(layout, summary, announce)
        announce(f"attribute and gate the remediated versions {', '.join(fixed)}")
        audit_period(layout, runner)
        gate_versions(layout, fixed, summary, runner, announce)
    finally:
        runner.close()
    first_blocked = next(iter(summary.blamed), keys[-1])
    sign_and_verify(layout, summary, first_blocked, announce)
    summary.seconds = time.perf_counter() - started
    return summary
