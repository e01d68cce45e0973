"""The metrics rules are checked against, computed in DuckDB SQL in one pass over the scores.

For the gated version (and its previous audited version, for ``delta_vs_previous``) every
(stage, behaviour) gets: ``effect`` (the contribution), ``harm`` (effect for harm behaviours,
−effect for benefit ones), ``total_harm`` (sum of the positive ``harm`` over the stages),
``share`` (positive harm / total harm; 0 when no stage adds harm), ``rank`` (1 = the stage
adding the most harm), ``delta`` (effect − the same stage's effect in the previous audited
version; a stage new since then counts from 0, and so does every stage of a first audit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from auditor.errors import StoreError
from auditor.store import Store
from auditor.store.versions import split_key

_CATALOGUE = """
SELECT s.version, s.estimator, s.config_hash, max(r.started_at) AS last_run,
       list(DISTINCT s.behaviour) FILTER (WHERE s.version = $version) AS behaviours
FROM stage_scores s JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND s.model = $model
GROUP BY ALL
"""

_METRICS = """
WITH picked AS (
  SELECT s.version, s.stage_index, s.stage_id, s.stage_kind, s.behaviour, s.direction, s.effect
  FROM stage_scores s JOIN runs r USING (run_id)
  WHERE r.status = 'complete' AND s.model = $model AND s.version IN ($version, $previous)
    AND s.estimator = $estimator AND s.config_hash = $config
  QUALIFY dense_rank() OVER (PARTITION BY s.version, s.behaviour
                             ORDER BY r.started_at DESC, s.run_id DESC) = 1
), signed AS (
  SELECT *, CASE WHEN direction = 'harm' THEN effect ELSE -effect END AS harm FROM picked
), windowed AS (
  SELECT *,
    sum(greatest(harm, 0)) OVER per AS total_harm,
    rank() OVER (PARTITION BY version, behaviour ORDER BY harm DESC) AS rank,
    bool_or(effect IS NULL OR isnan(effect)) OVER per AS behaviour_nan
  FROM signed WINDOW per AS (PARTITION BY version, behaviour)
), previous_behaviours AS (
  SELECT DISTINCT behaviour FROM picked WHERE version = $previous
)
SELECT c.stage_index, c.stage_id, c.stage_kind, c.behaviour, c.direction, c.effect,
  c.total_harm,
  CASE WHEN c.total_harm > 0 THEN greatest(c.harm, 0) / c.total_harm ELSE 0.0 END AS share,
  CAST(c.rank AS DOUBLE) AS rank, c.behaviour_nan,
  CASE WHEN $previous IS NULL THEN c.effect
       WHEN pb.behaviour IS NULL THEN NULL
       ELSE c.effect - coalesce(p.effect, 0.0) END AS delta
FROM windowed c
LEFT JOIN windowed p ON p.version = $previous AND p.stage_id = c.stage_id
  AND p.behaviour = c.behaviour
LEFT JOIN previous_behaviours pb ON pb.behaviour = c.behaviour
WHERE c.version = $version
ORDER BY c.behaviour, c.stage_index
"""

_TAGS = """
SELECT stage_id, list_distinct(flatten(list(coalesce(tags, [])))) AS tags FROM datasets
WHERE model = ? AND version = ? GROUP BY stage_id
"""


@dataclass(frozen=True)
class ScoreContext:
    """Which scores a gate reads: the estimator configuration and the version to compare to."""

    key: str
    estimator: str | None
    config_hash: str | None
    previous: str | None  # the previous audited version (same model, estimator, config)
    scored: frozenset[str]  # behaviours scored for the version under that configuration
    elsewhere: dict[str, list[str]] = field(default_factory=dict)  # behaviour → other configs
    fidelity_passed: bool = False

    @property
    def model(self) -> str:
        return split_key(self.key)[0]

    @property
    def version(self) -> str:
        return split_key(self.key)[1]


def score_context(store: Store, key: str, estimator: str | None = None) -> ScoreContext:
    """Pick the estimator configuration to gate on: ``estimator`` (else the one of the
    version's latest scoring run) at the configuration of its latest run."""
    model, version = split_key(key)
    created = _created_at(store, model)
    if version not in created:
        raise StoreError(f"version {key} is not in the store {store.path}")
    catalogue = _arrow(store, _CATALOGUE, {"model": model, "version": version}).to_pylist()
    own = [row for row in catalogue if row["version"] == version]
    chosen = _latest(own, estimator)
    if chosen is None:
        return ScoreContext(key, estimator, None, None, frozenset(), _elsewhere(own, None))
    config = (chosen["estimator"], chosen["config_hash"])
    previous = _previous(catalogue, created, version, config)
    return ScoreContext(key, config[0], config[1], previous, frozenset(chosen["behaviours"]),
                        _elsewhere(own, config),
                        _fidelity_passed(store, model, version, *config))


def _created_at(store: Store, model: str) -> dict[str, datetime | None]:
    rows = store.query("SELECT version, created_at FROM versions WHERE model = ?", [model])
    return {row["version"]: row["created_at"] for row in rows}


def _latest(rows: list[dict], estimator: str | None) -> dict | None:
    candidates = [r for r in rows if estimator is None or r["estimator"] == estimator]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r["last_run"], r["config_hash"]))


def _previous(catalogue: list[dict], created: dict, version: str,
              config: tuple[str, str]) -> str | None:
    now = created.get(version)
    if now is None:
        return None
    earlier = {r["version"] for r in catalogue
               if (r["estimator"], r["config_hash"]) == config
               and created.get(r["version"]) is not None and created[r["version"]] < now}
    if not earlier:
        return None
    return max(earlier, key=lambda v: (created[v], v))


def _elsewhere(rows: list[dict], config: tuple[str, str] | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in rows:
        if (row["estimator"], row["config_hash"]) != config:
            for name in row["behaviours"] or []:
                found.setdefault(name, []).append(f"{row['estimator']}/{row['config_hash']}")
    return {name: sorted(configs) for name, configs in found.items()}


def _fidelity_passed(store: Store, model: str, version: str, estimator: str,
                     config: str) -> bool:
    rows = store.fidelity_checks(model, version, estimator).to_pylist()
    return any(r["config_hash"] == config and r["passed"] for r in rows)


def metric_table(store: Store, context: ScoreContext) -> pa.Table:
    """One row per (behaviour, stage) of the gated version with every metric (see module doc)."""
    return _arrow(store, _METRICS, {"model": context.model, "version": context.version,
                                    "previous": context.previous,
                                    "estimator": context.estimator or "",
                                    "config": context.config_hash or ""})


def _arrow(store: Store, sql: str, params: dict) -> pa.Table:
    try:
        return store.conn.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise StoreError(f"cannot read scores from {store.path}: {exc}") from exc


def stage_tags(store: Store, key: str) -> dict[str, set[str]]:
    """Dataset tags of each stage of a version."""
    model, version = split_key(key)
    return {row["stage_id"]: set(row["tags"] or [])
            for row in store.query(_TAGS, [model, version])}


def as_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The metric table as numpy columns (floats with NaN for NULL)."""
    columns: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_floating(column.type):
            columns[name] = column.to_numpy(zero_copy_only=False).astype(float)
        elif pa.types.is_boolean(column.type):
            columns[name] = np.asarray(column.fill_null(True).to_numpy(zero_copy_only=False),
                                       dtype=bool)
        else:
            columns[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    return columns
