"""Reading score rows back for comparisons."""

from __future__ import annotations

import math

from auditor.execution.items import RUN_KIND
from auditor.store import Store

SCORE_KEY = ("model", "version", "stage_index", "behaviour", "estimator", "config_hash")


def score_rows(db) -> list[dict]:
    """Score rows of complete runs without run ids, sorted, NaN as None (comparable)."""
    with Store.open(db, read_only=True) as store:
        rows = store.scores().drop_columns(["run_id"]).to_pylist()
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
             for r in rows]
    return sorted(clean, key=lambda r: tuple(str(r[k]) for k in SCORE_KEY))


def attribution_runs(db, status: str = "complete") -> list[dict]:
    with Store.open(db, read_only=True) as store:
        return store.query("SELECT * FROM runs WHERE kind = ? AND status = ?", [RUN_KIND, status])


def duplicate_keys(rows: list[dict]) -> list[tuple]:
    keys = [tuple(r[k] for k in SCORE_KEY) for r in rows]
    return sorted({k for k in keys if keys.count(k) > 1})
