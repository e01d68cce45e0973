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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.errors import StoreError
from auditor.store import Store
from auditor.store.versions import split_key

_CATALOGUE = """
SELECT s.version, s.estimator, s.config_hash, s.run_id, r.started_at
FROM (SELECT DISTINCT version, estimator, config_hash, run_id FROM stage_scores
      WHERE model = $model) s
JOIN runs r USING (run_id) WHERE r.status = 'complete'
"""

# Rows of the chosen runs; when a version was scored by several runs under the same
# configuration, each (behaviour, stage) row comes from the latest run that scored it (replay
# units store one stage each, docs/certify.md).
_LATEST_RUN = """
  QUALIFY dense_rank() OVER (PARTITION BY s.version, s.behaviour, s.stage_index
                             ORDER BY r.started_at DESC, s.run_id DESC) = 1"""

_METRICS = """
WITH picked AS (
  SELECT s.version, s.stage_index, s.stage_id, s.stage_kind, s.behaviour, s.direction, s.effect,
    s.lo, s.hi, s.evidence, s.calibration_id
  FROM stage_scores s JOIN runs r USING (run_id)
  WHERE s.model = $model AND s.version IN ($version, $previous)
    AND s.estimator = $estimator AND s.config_hash = $config AND list_contains($runs, s.run_id)
  {latest_run}
), current AS (
  SELECT *, CASE WHEN direction = 'harm' THEN effect ELSE -effect END AS harm
  FROM picked WHERE version = $version
), windowed AS (
  SELECT *,
    sum(greatest(harm, 0)) OVER per AS total_harm,
    rank() OVER (PARTITION BY behaviour ORDER BY harm DESC) AS rank,
    bool_or(effect IS NULL OR NOT isfinite(effect)) OVER per AS behaviour_nan
  FROM current WINDOW per AS (PARTITION BY behaviour)
), previous AS (
  SELECT stage_id, behaviour, effect, lo, hi FROM picked WHERE version = $previous
), previous_behaviours AS (
  SELECT DISTINCT behaviour FROM previous
)
SELECT c.stage_index, c.stage_id, c.stage_kind, c.behaviour, c.direction, c.effect,
  c.total_harm,
  CASE WHEN c.total_harm > 0 THEN greatest(c.harm, 0) / c.total_harm ELSE 0.0 END AS share,
  CAST(c.rank AS DOUBLE) AS rank, c.behaviour_nan,
  CASE WHEN $previous IS NULL THEN c.effect
       WHEN pb.behaviour IS NULL THEN NULL
       ELSE c.effect - coalesce(p.effect, 0.0) END AS delta,
  c.lo, c.hi, coalesce(c.evidence, 'uncalibrated') AS evidence, c.calibration_id,
  coalesce(p.lo, p.effect) AS prev_lo, coalesce(p.hi, p.effect) AS prev_hi
FROM windowed c
LEFT JOIN previous p ON p.stage_id = c.stage_id AND p.behaviour = c.behaviour
LEFT JOIN previous_behaviours pb ON pb.behaviour = c.behaviour
ORDER BY c.behaviour, c.stage_index
"""

_ELSEWHERE = """
SELECT DISTINCT s.behaviour, s.estimator || '/' || s.config_hash AS config FROM stage_scores s
JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND s.model = $model AND s.version = $version
  AND list_contains($names, s.behaviour)
ORDER BY ALL
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
    runs: tuple[str, ...] = ()  # complete runs holding those scores (version and previous)
    several_runs: bool = False  # a version scored by more than one of them
    configs: tuple[str, ...] = ()  # every estimator/config the version is scored under
    fidelity_passed: bool = False
    elsewhere: dict[str, list[str]] = field(default_factory=dict)  # unscored name -> configs

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
    catalogue = store.arrow(_CATALOGUE, {"model": model}).to_pylist()
    own = [row for row in catalogue if row["version"] == version]
    configs = tuple(sorted({f"{r['estimator']}/{r['config_hash']}" for r in own}))
    chosen = _latest(own, estimator)
    if chosen is None:
        return ScoreContext(key, estimator, None, None, configs=configs)
    config = (chosen["estimator"], chosen["config_hash"])
    previous = _previous(catalogue, created, version, config)
    runs = [r["run_id"] for r in catalogue if (r["estimator"], r["config_hash"]) == config
            and r["version"] in (version, previous)]
    return ScoreContext(key, config[0], config[1], previous, tuple(sorted(runs)),
                        len(runs) > (2 if previous else 1), configs,
                        _fidelity_passed(store, model, version, *config))


def _created_at(store: Store, model: str) -> dict[str, datetime | None]:
    rows = store.query("SELECT version, created_at FROM versions WHERE model = ?", [model])
    return {row["version"]: row["created_at"] for row in rows}


def _latest(rows: list[dict], estimator: str | None) -> dict | None:
    candidates = [r for r in rows if estimator is None or r["estimator"] == estimator]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r["started_at"], r["run_id"]))


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


def scored_elsewhere(store: Store, context: ScoreContext,
                     names: list[str]) -> dict[str, list[str]]:
    """For behaviours the chosen configuration did not score: the configurations that did."""
    if not names:
        return {}
    found: dict[str, list[str]] = {}
    rows = store.arrow(_ELSEWHERE, {"model": context.model, "version": context.version,
                                      "names": names}).to_pylist()
    for row in rows:
        found.setdefault(row["behaviour"], []).append(row["config"])
    return found


def _fidelity_passed(store: Store, model: str, version: str, estimator: str,
                     config: str) -> bool:
    rows = store.fidelity_checks(model, version, estimator).to_pylist()
    return any(r["config_hash"] == config and r["passed"] for r in rows)


def metric_table(store: Store, context: ScoreContext) -> pa.Table:
    """One row per (behaviour, stage) of the gated version with every metric (see module doc)."""
    sql = _METRICS.format(latest_run=_LATEST_RUN if context.several_runs else "")
    return store.arrow(sql, {"model": context.model, "version": context.version,
                               "previous": context.previous,
                               "estimator": context.estimator or "",
                               "config": context.config_hash or "", "runs": list(context.runs)})


def lineage_kinds(store: Store, key: str) -> dict[str, str]:
    """Stage kinds as the lineage records them (for score rows that lack one)."""
    model, version = split_key(key)
    return {row["stage_id"]: row["kind"] for row in store.query(
        "SELECT stage_id, kind FROM stages WHERE model = ? AND version = ?", [model, version])}


def stage_tags(store: Store, key: str) -> dict[str, set[str]]:
    """Dataset tags of each stage of a version."""
    model, version = split_key(key)
    return {row["stage_id"]: set(row["tags"] or [])
            for row in store.query(_TAGS, [model, version])}


def as_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The metric table as numpy columns (floats with NaN for NULL). Text columns named in
    ``CODED`` also come as integer codes (``<name>_code``) into ``<name>_names``, so that rules
    select rows by integer lookups, not string comparisons."""
    columns: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(column.type):
            columns[name] = column.to_numpy(zero_copy_only=False).astype(float)
        elif pa.types.is_boolean(column.type):
            columns[name] = np.asarray(column.fill_null(True).to_numpy(zero_copy_only=False),
                                       dtype=bool)
        else:
            columns[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        if name in CODED:
            encoded = pc.dictionary_encode(column)
            columns[f"{name}_code"] = encoded.indices.to_numpy(zero_copy_only=False)
            columns[f"{name}_names"] = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    return columns


CODED = ("behaviour", "stage_id")
