"""The overview page: every model version with its latest verdict, blamed stages, evidence kind
and audit period, filtered by model, period and verdict. One SQL query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from auditor.serve import evidence
from auditor.serve.links import version_url
from auditor.store import Store
from auditor.store.periods import period_bounds
from auditor.store.schema import VERDICTS

NOT_EVALUATED = "NOT EVALUATED"
VERDICT_FILTERS = (*VERDICTS, NOT_EVALUATED)


def quarter(moment: datetime | None) -> str | None:
    """The audit period a version falls in: the quarter of its ``created_at`` (the period
    ``auditor report --period`` selects it by)."""
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}" if moment else None


def overview_sql(columns: set[str], *, model: str | None, period: str | None,
                 verdict: str | None) -> tuple[str, list[Any]]:
    stored = {"evidence", "lo", "hi"} <= columns
    kind, _, _ = evidence.evidence_sql({"evidence", "lo", "hi"}, "g")
    where, params = ["TRUE"], []
    if model is not None:
        where.append("v.model = ?")
        params.append(model)
    if period is not None:
        where.append("v.created_at >= ? AND v.created_at < ?")
        params.extend(period_bounds(period))
    if verdict == NOT_EVALUATED:
        where.append("lv.verdict IS NULL")
    elif verdict is not None:
        where.append("lv.verdict = ?")
        params.append(verdict)
    # group the score rows first (few keys per run), then name their evidence kind
    sql = f"""
WITH done AS (SELECT run_id, finished_at FROM runs WHERE status = 'complete'),
grouped AS (
  SELECT run_id, model, version, estimator,
         {"evidence" if stored else "NULL::VARCHAR"} AS evidence,
         {"max((hi - lo) / 2)" if stored else "NULL::DOUBLE"} AS band, count(*) AS n
  FROM stage_scores GROUP BY ALL),
per_run AS (
  SELECT run_id, model, version,
         coalesce(sum(n) FILTER (WHERE {kind} = 'exact'), 0) AS exact,
         coalesce(sum(n) FILTER (WHERE {kind} = 'estimate'), 0) AS estimate,
         coalesce(sum(n) FILTER (WHERE {kind} NOT IN ('exact', 'estimate')), 0) AS uncalibrated,
         max(band) FILTER (WHERE {kind} = 'estimate') AS band, min(estimator) AS estimator
  FROM grouped g GROUP BY run_id, model, version),
scored AS (
  SELECT p.*, row_number() OVER (PARTITION BY p.model, p.version
                                 ORDER BY d.finished_at DESC, p.run_id) AS latest
  FROM per_run p JOIN done d USING (run_id)),
judged AS (
  SELECT t.run_id, t.model, t.version, t.verdict, t.policy_id, t.evaluated_at,
         row_number() OVER (PARTITION BY t.model, t.version
                            ORDER BY d.finished_at DESC, t.run_id) AS latest
  FROM verdicts t JOIN done d USING (run_id)),
lv AS (SELECT * FROM judged WHERE latest = 1),
blamed AS (
  SELECT run_id, model, version, list(DISTINCT stage_id ORDER BY stage_id) AS stages
  FROM policy_results WHERE outcome = 'fail' AND stage_id IS NOT NULL
    AND run_id IN (SELECT run_id FROM lv)
  GROUP BY run_id, model, version)
SELECT v.model, v.version, v.created_at, v.stage_count, v.description,
       lv.verdict, lv.policy_id, lv.evaluated_at, b.stages AS blamed,
       s.estimator, s.exact, s.estimate, s.uncalibrated, s.band
FROM versions v
LEFT JOIN lv ON lv.model = v.model AND lv.version = v.version
LEFT JOIN blamed b ON b.run_id = lv.run_id AND b.model = v.model AND b.version = v.version
LEFT JOIN scored s ON s.model = v.model AND s.version = v.version AND s.latest = 1
WHERE {' AND '.join(where)}
ORDER BY v.model, v.created_at NULLS LAST, v.version"""
    return sql, params


def overview(store: Store, *, model: str | None = None, period: str | None = None,
             verdict: str | None = None) -> dict[str, Any]:
    sql, params = overview_sql(evidence.score_columns(store), model=model, period=period,
                               verdict=verdict)
    rows = []
    for row in store.query(sql, params):
        summary = evidence.summary({k: row[k] for k in evidence.KINDS}, row["band"])
        rows.append({"model": row["model"], "version": row["version"],
                     "key": f"{row['model']}@{row['version']}",
                     "url": version_url(row["model"], row["version"]),
                     "created_at": row["created_at"], "period": quarter(row["created_at"]),
                     "stages": row["stage_count"], "description": row["description"],
                     "verdict": row["verdict"] or NOT_EVALUATED, "policy": row["policy_id"],
                     "evaluated_at": row["evaluated_at"], "blamed": row["blamed"] or [],
                     "estimator": row["estimator"], "evidence": summary})
    models = [r["model"] for r in store.query("SELECT model FROM models ORDER BY model")]
    periods = sorted({quarter(r["q"]) for r in store.query(
        "SELECT DISTINCT date_trunc('quarter', created_at) AS q FROM versions "
        "WHERE created_at IS NOT NULL")}, reverse=True)
    counts = {name: sum(r["verdict"] == name for r in rows) for name in VERDICT_FILTERS}
    return {"filters": {"model": model, "period": period, "verdict": verdict},
            "models": models, "periods": periods, "verdicts": list(VERDICT_FILTERS),
            "counts": counts, "versions": rows}
