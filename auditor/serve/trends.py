"""The trends page: one behaviour of one model across its versions and audit periods, and what
changed since the previous audit (stages, data, totals, verdict)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from auditor.report.stages import version_diff
from auditor.serve import evidence
from auditor.serve.overview import quarter
from auditor.store import Store


def _choices(store: Store, model: str | None) -> tuple[list[str], list[str]]:
    models = [r["model"] for r in store.query("SELECT model FROM models ORDER BY model")]
    behaviours = [r["behaviour"] for r in store.query(
        "SELECT DISTINCT behaviour FROM stage_scores WHERE model = ? ORDER BY behaviour",
        [model])] if model else []
    return models, behaviours


def trend_sql(columns: set[str]) -> str:
    kind, lo, hi = evidence.evidence_sql(columns, "s")
    return f"""
WITH latest AS (
  SELECT run_id, model, version FROM (
    SELECT p.run_id, p.model, p.version,
           row_number() OVER (PARTITION BY p.model, p.version
                              ORDER BY r.finished_at DESC, p.run_id) AS n
    FROM (SELECT DISTINCT run_id, model, version FROM stage_scores WHERE model = $model) p
    JOIN runs r USING (run_id) WHERE r.status = 'complete') WHERE n = 1),
verdict AS (
  SELECT model, version, verdict FROM (
    SELECT t.model, t.version, t.verdict,
           row_number() OVER (PARTITION BY t.model, t.version
                              ORDER BY r.finished_at DESC, t.run_id) AS n
    FROM verdicts t JOIN runs r USING (run_id)
    WHERE r.status = 'complete' AND t.model = $model) WHERE n = 1)
SELECT v.version, v.created_at, vd.verdict, sum(s.effect) AS total,
       bool_and(isfinite(s.effect)) AS finite, any_value(s.metric_value) AS metric_value,
       any_value(s.direction) AS direction, any_value(s.estimator) AS estimator,
       list(struct_pack(stage_id := s.stage_id, stage_kind := s.stage_kind, effect := s.effect,
                        kind := {kind}, lo := {lo}, hi := {hi}) ORDER BY s.stage_index)
         FILTER (WHERE s.stage_id IS NOT NULL) AS stages
FROM versions v
LEFT JOIN latest l ON l.model = v.model AND l.version = v.version
LEFT JOIN stage_scores s ON s.run_id = l.run_id AND s.model = v.model
  AND s.version = v.version AND s.behaviour = $behaviour
LEFT JOIN verdict vd ON vd.model = v.model AND vd.version = v.version
WHERE v.model = $model
GROUP BY v.version, v.created_at, vd.verdict
ORDER BY v.created_at NULLS LAST, v.version"""


def _version_row(model: str, row: dict[str, Any]) -> dict[str, Any]:
    stages = row["stages"] or []
    counts: dict[str, int] = defaultdict(int)
    bands = []
    for stage in stages:
        counts[stage["kind"]] += 1
        if stage["kind"] == evidence.ESTIMATE and stage["lo"] is not None \
                and stage["hi"] is not None:
            bands.append((stage["hi"] - stage["lo"]) / 2)
    by_kind: dict[str, float] = defaultdict(float)
    for stage in stages:
        by_kind[stage["stage_kind"] or "-"] += stage["effect"] or 0.0
    scored = bool(stages)
    return {"version": row["version"], "key": f"{model}@{row['version']}",
            "created_at": row["created_at"], "period": quarter(row["created_at"]),
            "verdict": row["verdict"], "scored": scored, "estimator": row["estimator"],
            "total": row["total"] if scored and row["finite"] else None,
            "metric_value": row["metric_value"], "by_stage_kind": dict(by_kind),
            "evidence": evidence.summary(counts, max(bands, default=None))}


def _periods(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["scored"] and row["period"]:
            groups[row["period"]].append(row)
    out = []
    for period, members in sorted(groups.items()):
        totals = [m["total"] for m in members if m["total"] is not None]
        metrics = [m["metric_value"] for m in members if m["metric_value"] is not None]
        out.append({"period": period, "versions": len(members),
                    "mean_total": sum(totals) / len(totals) if totals else None,
                    "mean_metric": sum(metrics) / len(metrics) if metrics else None,
                    "failed": sum(m["verdict"] == "FAIL" for m in members)})
    return out


def _since_previous(store: Store, model: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    audited = [r for r in rows if r["scored"]]
    if not audited:
        return None
    latest = audited[-1]
    before = audited[-2] if len(audited) > 1 else None
    old = store.get_version(before["key"]) if before else None
    change = None
    if before and latest["total"] is not None and before["total"] is not None:
        change = latest["total"] - before["total"]
    return {"version": latest["key"], "previous": before["key"] if before else None,
            "verdict": latest["verdict"], "previous_verdict": before["verdict"] if before else None,
            "total": latest["total"], "previous_total": before["total"] if before else None,
            "change": change, "lineage": version_diff(old, store.get_version(latest["key"]))}


def trends(store: Store, *, model: str | None, behaviour: str | None) -> dict[str, Any]:
    models, _ = _choices(store, None)
    model = model if model is not None else (models[0] if models else None)
    _, behaviours = _choices(store, model)
    behaviour = behaviour if behaviour is not None else (behaviours[0] if behaviours else None)
    rows: list[dict[str, Any]] = []
    if model is not None and behaviour is not None:
        found = store.query(trend_sql(evidence.score_columns(store)).replace("$model", "$1")
                            .replace("$behaviour", "$2"), [model, behaviour])
        rows = [_version_row(model, row) for row in found]
    return {"model": model, "behaviour": behaviour, "models": models, "behaviours": behaviours,
            "versions": rows, "periods": _periods(rows),
            "since_previous": _since_previous(store, model, rows) if rows else None}
