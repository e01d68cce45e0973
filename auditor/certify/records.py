"""What a certified gate writes and reports beside its verdict: the calibration row, the
certified score rows (value, band, evidence per stage and behaviour), and the estimator
configurations whose bands disagree with this one."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from auditor.certify.conformal import EPSILON, Calibration, UnitSample
from auditor.certify.table import EffectTable
from auditor.policy.metrics import ScoreContext

if TYPE_CHECKING:
    from auditor.store import Store

CERTIFY_RUN_KIND = "certification"


def median_relative_error(samples: list[UnitSample]) -> float | None:
    """Median of |est − exact| / (|exact| + ε) over the sampled pairs."""
    errors = [np.abs(s.estimate - s.exact) / (np.abs(s.exact) + EPSILON) for s in samples]
    values = np.concatenate(errors) if errors else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def calibration_row(cal: Calibration, model: str | None,
                    median_error: float | None = None) -> dict:
    est = np.array([r for r in cal.residuals])
    finite = {k: (v if math.isfinite(v) else None) for k, v in cal.q.items()}
    return {"estimator": cal.estimator, "config_hash": cal.config_hash, "model": model,
            "alpha": cal.alpha, "coverage_target": cal.target, "n": cal.n.get("*", 0),
            "n_units": cal.n_units, "normalisation": cal.normalisation,
            "pooling": cal.pooling, "strata": cal.strata, "q": finite.get("*"),
            "q_json": finite, "units_json": [list(u) for u in cal.units],
            "residuals_json": [float(r) for r in est],
            "measured_coverage": _nan_none(cal.coverage.get("*")),
            "coverage_json": {k: _nan_none(v) for k, v in cal.coverage.items()},
            "median_relative_error": median_error, "source": cal.source}


def _nan_none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def store_certified(store: Store, table: EffectTable, context: ScoreContext) -> str:
    """The certified rows of the gated version: value, band and evidence per (stage,
    behaviour), under the estimator configuration they certify."""
    K, Q = table.estimate.shape
    effects, evidence, ids = table.effects, table.evidence(), table.calibration_ids()
    shares = table.shares
    model, version = table.key.split("@", 1)
    rows = {"model": [], "version": [], "stage_index": [], "stage_id": [], "stage_kind": [],
            "behaviour": [], "direction": [], "estimator": [], "estimator_version": [],
            "convention": [], "config_hash": [], "effect": [], "share": [],
            "metric_value": [], "evidence": [], "lo": [], "hi": [], "calibration_id": []}
    metric = table.metric_values if table.metric_values is not None else np.full(Q, np.nan)
    for k in range(K):
        for q in range(Q):
            lo, hi = table.lo[k, q], table.hi[k, q]
            for name, value in (("model", model), ("version", version), ("stage_index", k),
                                ("stage_id", table.stage_ids[k]),
                                ("stage_kind", table.stage_kinds[k]),
                                ("behaviour", table.behaviours[q]),
                                ("direction", table.directions[q]),
                                ("estimator", context.estimator), ("estimator_version", None),
                                ("convention", None), ("config_hash", context.config_hash),
                                ("effect", float(effects[k, q])),
                                ("share", None if np.isnan(shares[k, q]) else float(shares[k, q])),
                                ("metric_value", None if np.isnan(metric[q]) else float(metric[q])),
                                ("evidence", evidence[k, q]),
                                ("lo", None if np.isnan(lo) else float(lo)),
                                ("hi", None if np.isnan(hi) else float(hi)),
                                ("calibration_id", ids[k])):
                rows[name].append(value)
    scores = pa.table(rows).cast(pa.schema([
        (n, pa.int32() if n == "stage_index" else pa.float64()
         if n in ("effect", "share", "metric_value", "lo", "hi") else pa.string())
        for n in rows]))
    return store.record_run(CERTIFY_RUN_KIND, {"version": table.key,
                                               "estimator": context.estimator,
                                               "config_hash": context.config_hash,
                                               "calibration_id": table.calibration_id},
                            scores=scores)


_OTHERS = """
SELECT s.estimator, s.config_hash, s.stage_index, s.stage_id, s.behaviour, s.lo, s.hi
FROM stage_scores s JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND r.kind = 'certification' AND s.model = ? AND s.version = ?
  AND NOT (s.estimator = ? AND s.config_hash = ?) AND s.lo IS NOT NULL AND s.hi IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY s.estimator, s.config_hash, s.behaviour, s.stage_index
                           ORDER BY r.started_at DESC, s.run_id DESC) = 1
"""


def disagreements(store: Store, table: EffectTable, context: ScoreContext) -> list[str]:
    """Other estimator configurations certified on this version whose intervals do not overlap
    this one's (one of the two bands missed the truth): one line each."""
    model, version = table.key.split("@", 1)
    rows = store.query(_OTHERS, [model, version, context.estimator, context.config_hash])
    index = {b: q for q, b in enumerate(table.behaviours)}
    found: dict[str, list[str]] = {}
    for row in rows:
        q = index.get(row["behaviour"])
        k = row["stage_index"]
        if q is None or k >= len(table.stage_ids) or table.lo is None:
            continue
        lo, hi = table.lo[k, q], table.hi[k, q]
        if np.isnan(lo) or np.isnan(hi):
            continue
        if row["hi"] < lo - 1e-12 or row["lo"] > hi + 1e-12:
            found.setdefault(f"{row['estimator']}/{row['config_hash']}", []).append(
                f"{row['stage_id']}/{row['behaviour']} [{lo:.3g}, {hi:.3g}] vs "
                f"[{row['lo']:.3g}, {row['hi']:.3g}]")
    return [f"{context.estimator}/{context.config_hash} and {other} disagree beyond their "
            f"bands on {len(items)} row(s): {'; '.join(items[:3])}"
            for other, items in found.items()]
