"""The evidence rows of one version, read from the store by run id.

The same function builds the evidence embedded in a report and, at verification time, re-reads
it from the store, so "the evidence matches the store" is an equality of two JSON documents.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auditor.store import Store

TABLES = ("stage_scores", "policy_results", "verdicts", "fidelity_checks")
_ORDER = {
    "stage_scores": "stage_index, behaviour",
    "policy_results": "rule_id, stage_id NULLS FIRST, behaviour",
    "verdicts": "evaluated_at, policy_id",
    "fidelity_checks": "checked_at, estimator",
}


def plain(value: Any) -> Any:
    """A JSON-able value: datetimes as ISO text, NaN as None."""
    kind = type(value)
    if kind is str or kind is int or value is None:  # most cells: returned at once
        return value
    if kind is float:
        return None if value != value else value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(store: Store, table: str, run_ids: list[str], model: str,
          version: str) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    rows = store.query(f"SELECT * FROM {table} WHERE run_id IN ({marks}) AND model = ? AND "
                       f"version = ? ORDER BY {_ORDER[table]}, run_id",
                       [*run_ids, model, version])
    return [{name: plain(value) for name, value in row.items()} for row in rows]


def latest_scores(store: Store, model: str, version: str) -> list[dict[str, Any]]:
    """The stage scores of ``model@version``'s latest complete scoring run."""
    run = latest_run(store, "stage_scores", model, version)
    return _rows(store, "stage_scores", [run] if run else [], model, version)


def version_evidence(store: Store, model: str, version: str,
                     runs: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Rows of ``model@version`` in each evidence table, from the runs named per table."""
    return {table: _rows(store, table, runs.get(table, []), model, version) for table in TABLES}


def latest_run(store: Store, table: str, model: str, version: str) -> str | None:
    """The most recently finished complete run holding rows of ``model@version`` in ``table``."""
    rows = store.query(
        f"SELECT t.run_id FROM {table} t JOIN runs r USING (run_id) WHERE r.status = 'complete'"
        " AND t.model = ? AND t.version = ?"
        " ORDER BY r.finished_at DESC, t.run_id LIMIT 1", [model, version])
    return rows[0]["run_id"] if rows else None


def evidence_runs(store: Store, model: str, version: str) -> dict[str, list[str]]:
    """The runs a report cites for a version: latest scores, latest verdict (and its policy
    results), every fidelity check of the scores' estimator."""
    score_run = latest_run(store, "stage_scores", model, version)
    verdict_run = latest_run(store, "verdicts", model, version)
    fidelity = []
    if score_run:
        fidelity = [r["run_id"] for r in store.query(
            "SELECT DISTINCT f.run_id FROM fidelity_checks f JOIN runs r USING (run_id) "
            "WHERE r.status = 'complete' AND f.model = ? AND f.version = ? AND f.estimator IN "
            "(SELECT estimator FROM stage_scores WHERE run_id = ?) ORDER BY f.run_id",
            [model, version, score_run])]
    return {"stage_scores": [score_run] if score_run else [],
            "policy_results": [verdict_run] if verdict_run else [],
            "verdicts": [verdict_run] if verdict_run else [],
            "fidelity_checks": fidelity}
