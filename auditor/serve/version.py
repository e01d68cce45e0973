"""The version page: lineage as a stage graph, the stage × behaviour effects with their evidence,
policy rows with rationale, waivers, remediation before/after, and the reports that cite it.

The numbers come from the report room's own view of a version (``version_report``), so the
dashboard and a report rendered now show the same thing.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from auditor.report.context import version_report
from auditor.report.definitions import rationales
from auditor.serve.evidence import row_evidence
from auditor.serve.overview import quarter
from auditor.store import Store


def exists(store: Store, model: str, version: str) -> bool:
    return bool(store.query("SELECT 1 FROM versions WHERE model = ? AND version = ?",
                            [model, version]))


def _checkpoints(store: Store, model: str, version: str) -> dict[str, list[dict[str, Any]]]:
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for row in store.query("SELECT stage_id, role, uri, sha256, format FROM checkpoints "
                           "WHERE model = ? AND version = ? ORDER BY stage_id, role",
                           [model, version]):
        by_stage.setdefault(row["stage_id"], []).append(row)
    return by_stage


def _expired(expiry: Any, today: date) -> bool:
    if isinstance(expiry, str):
        try:
            expiry = date.fromisoformat(expiry[:10])
        except ValueError:
            return False
    return isinstance(expiry, date) and expiry < today


def _effects(behaviours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for b in behaviours:
        stages = [{"stage_index": s["stage_index"], "stage_id": s["stage_id"],
                   "stage_kind": s["stage_kind"], "effect": s["effect"], "share": s["share"],
                   "harm": s["harm"], "rank": s["rank"], "evidence": row_evidence(s)}
                  for s in b["stages"]]
        out.append({"name": b["name"], "direction": b["direction"], "estimator": b["estimator"],
                    "config_hash": b["config_hash"], "metric_value": b["metric_value"],
                    "total": b["total"] if b["finite"] else None, "change": b["change"],
                    "previous_total": b["previous_total"],
                    "top": [s["stage_id"] for s in b["top"]], "stages": stages})
    return out


def _remediations(store: Store, key: str) -> list[dict[str, Any]]:
    done = []
    for config in store.run_configs("remediation"):
        if key not in (config.get("from"), config.get("to")):
            continue
        before, after = config.get("before") or {}, config.get("after") or {}
        names = list(dict.fromkeys([*before, *after]))
        done.append({"from": config.get("from"), "to": config.get("to"),
                     "dropped_stage": config.get("dropped_stage"),
                     "behaviours": [{"name": n, "before": before.get(n), "after": after.get(n)}
                                    for n in names]})
    return done


def version_page(store: Store, model: str, version: str,
                 today: date | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(page data, the report room's behaviour results for the heat map)."""
    key = f"{model}@{version}"
    report = version_report(store, key)
    today = today or datetime.now(timezone.utc).date()
    checkpoints = _checkpoints(store, model, version)
    stages = [stage | {"checkpoints": checkpoints.get(stage["id"], [])} for stage in report.stages]
    policy = report.policy
    rationale = rationales(report.runs, report.runs_by_table.get("verdicts", []))
    rules = [{k: rule[k] for k in ("rule_id", "severity", "behaviour", "metric", "comparator",
                                   "threshold", "reason", "outcome", "outcomes")}
             | {"rationale": rationale.get(rule["rule_id"])} for rule in policy["rules"]]
    waivers = [{k: row[k] for k in ("rule_id", "behaviour", "stage_id", "outcome",
                                    "waiver_owner", "waiver_reason", "waiver_expiry")}
               | {"expired": _expired(row["waiver_expiry"], today)} for row in policy["waivers"]]
    info = dict(report.info)
    created = info.get("created_at")
    info["period"] = quarter(datetime.fromisoformat(created)) if created else None
    data = {
        "key": key, "model": model, "version": version, "info": info,
        "verdict": policy["verdict"], "evaluated_at": policy["evaluated_at"],
        "policy": {"id": policy["policy_id"], "version": policy["policy_version"],
                   "hash": policy["policy_hash"], "rules": rules, "rows": policy["rows"]},
        "waivers": waivers, "stages": stages, "effects": _effects(report.behaviours),
        "previous": report.previous, "changes": report.changes,
        "remediations": _remediations(store, key), "advice": report.remediation,
        "fidelity": report.fidelity,
    }
    return data, report.behaviours
