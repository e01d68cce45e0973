"""The report context: everything a report prints, read from the store in one place.

``build_context(store, version=...)`` builds a release-gate report of one version;
``build_context(store, period=...)`` a quarterly report of every version created in the period.
Templates only format what is here; nothing in a template queries anything.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.errors import ReportError, StoreError
from auditor.lineage.prov import to_prov_json
from auditor.report.definitions import rule_rows
from auditor.report.environment import environment
from auditor.report.evidence import evidence_runs, latest_scores, plain, version_evidence
from auditor.report.results import behaviour_results, policy_view, remediation_advice, trends
from auditor.report.settings import ReportSettings, Responsibility, load_settings, responsibilities
from auditor.report.stages import stage_view, version_diff
from auditor.report.summary import ExecutiveSummary, executive_summary
from auditor.report.traceability import AnnexPoint, annex_iv, reproduce, retention, revision_history
from auditor.store.versions import split_key

if TYPE_CHECKING:
    from auditor.lineage.models import ModelVersion
    from auditor.store import Store

GATE, QUARTERLY = "release-gate", "quarterly"


@dataclass
class VersionReport:
    key: str
    info: dict[str, Any]
    stages: list[dict[str, Any]]
    behaviours: list[dict[str, Any]]
    policy: dict[str, Any]
    fidelity: list[dict[str, Any]]
    previous: str | None
    changes: list[str]
    remediation: list[str]
    runs: list[dict[str, Any]]
    runs_by_table: dict[str, list[str]]
    evidence: dict[str, list[dict[str, Any]]]
    prov: dict[str, Any]
    calibrations: list[dict[str, Any]] = field(default_factory=list)  # bands the scores use
    replayed_stages: list[str] = field(default_factory=list)  # stages with a stored exact replay
    remediations: list[dict[str, Any]] = field(default_factory=list)  # recorded runs from it

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The policy's rules with every behaviour evaluated and the policy's rationale."""
        return rule_rows(self)

    @property
    def verdict(self) -> str:
        return self.policy["verdict"]

    @property
    def failing(self) -> bool:
        return self.verdict in ("FAIL", "INDETERMINATE")


@dataclass
class ReportContext:
    report_id: str
    kind: str
    subject: str
    period: str | None
    generated_at: str
    tool: dict[str, str]
    versions: list[VersionReport]
    behaviour_defs: list[dict[str, Any]]
    log_head: dict[str, Any]
    environment: dict[str, Any]
    demo: bool = False
    signer: str = "unsigned"
    attachments: list[dict[str, str]] = field(default_factory=list)
    settings: ReportSettings = field(default_factory=ReportSettings)
    revisions: list[dict[str, Any]] = field(default_factory=list)  # reports this supersedes

    @property
    def file_stem(self) -> str:
        subject = self.subject.replace("@", "-").replace("/", "-")
        return f"report-{self.kind}-{subject}"

    @property
    def summary(self) -> ExecutiveSummary:
        return executive_summary(self, self.settings)

    @property
    def responsibilities(self) -> list[Responsibility]:
        return responsibilities(self.settings)

    @property
    def annex(self) -> list[AnnexPoint]:
        return annex_iv()

    @property
    def reproduction(self) -> dict[str, Any]:
        return reproduce(self)

    @property
    def retention(self) -> list[str]:
        return retention()

    @property
    def verdict(self) -> str:
        verdicts = {v.verdict for v in self.versions}
        for worst in ("FAIL", "INDETERMINATE", "PASS-WITH-WAIVERS", "NOT EVALUATED"):
            if worst in verdicts:
                return worst
        return "PASS" if verdicts else "NOT EVALUATED"

    @property
    def failing_versions(self) -> list[VersionReport]:
        return [v for v in self.versions if v.failing]

    @property
    def rule_rationales(self) -> list[dict[str, Any]]:
        """Each rule the failing versions were gated on, with its policy's rationale, once
        (the quarterly prints it once instead of in every failing version's rule table)."""
        seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        for v in self.failing_versions:
            policy = f"{v.policy.get('policy_id') or '-'} / {v.policy.get('policy_version') or '-'}"
            for rule in v.rules:
                key = (rule["rule_id"], policy, rule["rationale"])
                seen.setdefault(key, {"rule_id": rule["rule_id"], "severity": rule["severity"],
                                      "policy": policy, "rationale": rule["rationale"]})
        return list(seen.values())

    @property
    def trends(self) -> dict[str, Any]:
        return trends(self.versions)

    def evidence(self) -> dict[str, Any]:
        """The document embedded as evidence.json."""
        return {"report_id": self.report_id, "kind": self.kind, "subject": self.subject,
                "period": self.period, "generated_at": self.generated_at, "tool": self.tool,
                "verdict": self.verdict, "event_log": self.log_head,
                "versions": [{"key": v.key, "verdict": v.verdict, "runs": v.runs_by_table,
                              "thresholds": v.policy["thresholds"], **v.evidence}
                             for v in self.versions]}


def _info(store: Store, key: str) -> dict[str, Any]:
    model, version = split_key(key)
    rows = store.query("SELECT model, version, created_at, task, parameters, description, "
                       "licence, parent, stage_count, lineage_sha256, source FROM versions "
                       "WHERE model = ? AND version = ?", [model, version])
    if not rows:
        raise ReportError(f"version {key} is not in the store {store.path}")
    return {name: plain(value) for name, value in rows[0].items()} | {"key": key}


def _runs(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"SELECT run_id, kind, config_hash, config_json, actor, started_at, "
                       f"finished_at FROM runs WHERE run_id IN ({marks}) ORDER BY started_at",
                       run_ids)
    return [{k: plain(v) for k, v in r.items()} | {"config": json.loads(r["config_json"])}
            for r in rows]


def _previous(store: Store, key: str, scores: list[dict[str, Any]]) -> ModelVersion | None:
    if not scores:
        return None
    first = scores[0]
    try:
        return store.previous_version(key, first["estimator"], first["config_hash"])
    except StoreError:  # a version without created_at has no predecessor
        return None


def version_report(store: Store, key: str) -> VersionReport:
    model, version = split_key(key)
    lineage = store.get_version(key)
    runs = evidence_runs(store, model, version)
    evidence = version_evidence(store, model, version, runs)
    previous = _previous(store, key, evidence["stage_scores"])
    previous_scores = latest_scores(store, previous.model, previous.version) if previous else []
    policy = policy_view(evidence["policy_results"], evidence["verdicts"])
    behaviours = behaviour_results(evidence["stage_scores"], previous_scores,
                                   evidence["policy_results"])
    run_ids = sorted({r for ids in runs.values() for r in ids})
    done = _remediations(store, key)
    return VersionReport(
        key=key, info=_info(store, key),
        stages=[stage_view(i, s) for i, s in enumerate(lineage.stages)],
        behaviours=behaviours, policy=policy, fidelity=evidence["fidelity_checks"],
        previous=previous.key if previous else None,
        changes=version_diff(previous, lineage),
        remediation=remediation_advice(key, behaviours, policy, done),
        runs=_runs(store, run_ids), runs_by_table=runs, evidence=evidence,
        prov=to_prov_json(lineage), calibrations=_calibrations(store, evidence["stage_scores"]),
        replayed_stages=_replayed(store, model, version), remediations=done)


def behaviour_definitions(store: Store, versions: list[VersionReport]) -> list[dict[str, Any]]:
    """The stored definition(s) of every behaviour the versions' scores measure, in the order
    first measured; a behaviour without one is listed by name (``defined`` False)."""
    measured = {b["name"]: b["direction"] for v in versions for b in v.behaviours}
    stored: dict[str, list[dict[str, Any]]] = {}
    for row in store.behaviours():
        stored.setdefault(row["name"], []).append({k: plain(v) for k, v in row.items()})
    return [{**d, "defined": True} for name in measured for d in stored.get(name, [])] + [
        {"name": name, "direction": direction, "defined": False}
        for name, direction in measured.items() if name not in stored]


def _calibrations(store: Store, scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calibrations behind the scores' bands (docs/certify.md), as the report prints them."""
    ids = sorted({r.get("calibration_id") for r in scores if r.get("calibration_id")})
    if not ids:
        return []
    return [{k: plain(v) for k, v in row.items()} for row in store.calibrations(ids)]


def _replayed(store: Store, model: str, version: str) -> list[str]:
    """Stages of the version whose exact leave-stage-out replay is stored (any run)."""
    rows = store.query("SELECT DISTINCT s.stage_index, s.stage_id FROM stage_scores s JOIN runs r "
                       "USING (run_id) WHERE r.status = 'complete' AND s.model = ? AND "
                       "s.version = ? AND s.estimator = 'replay' ORDER BY s.stage_index",
                       [model, version])
    return [row["stage_id"] for row in rows]


def _remediations(store: Store, key: str) -> list[dict[str, Any]]:
    return [c for c in store.run_configs("remediation") if c.get("from") == key]


def _keys(store: Store, version: str | None, period: str | None) -> tuple[str, str, list[str]]:
    if (version is None) == (period is None):
        raise ReportError("give exactly one of a version (model@version) or a period (2026-Q4)")
    if version is not None:
        split_key(version)
        return GATE, version, [version]
    keys = [info.key for info in store.list_versions(period=period)]
    if not keys:
        raise ReportError(f"no version in {store.path} was created in {period}")
    return QUARTERLY, period, keys


def build_context(store: Store, *, version: str | None = None, period: str | None = None,
                  demo: bool = False, settings: ReportSettings | None = None) -> ReportContext:
    """``settings``: the report settings (default: ./auditor.yaml when it exists, else every
    accountability field "not provided")."""
    kind, subject, keys = _keys(store, version, period)
    seq, head_hash = store.head()
    from auditor import __version__
    env = environment()
    versions = [version_report(store, key) for key in keys]
    context = ReportContext(
        report_id=uuid.uuid4().hex, kind=kind, subject=subject, period=period,
        generated_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        tool={"name": "auditor", "version": __version__, "commit": env["auditor_commit"]},
        versions=versions,
        behaviour_defs=behaviour_definitions(store, versions),
        log_head={"seq": seq, "hash": head_hash, "verified": store.verify_log().ok,
                  "store": Path(str(store.path)).name},  # no machine paths in a report
        environment=env, demo=demo,
        settings=settings if settings is not None else load_settings())
    context.revisions = revision_history(store.reports(), kind, f"{context.file_stem}.pdf")
    return context


