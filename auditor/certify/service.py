"""Certified gate of one stored version: the store, the executors and the policy engine around
the certify loop (auditor.certify.loop).

1. the estimate rows of the gated configuration (and of the previous audited version);
2. stored exact replays of their units are reused (and cited in the result);
3. calibration: a seeded, stratified sample of units is replayed, the bands are built and the
   calibration is stored;
4. the loop decides on intervals and replays, through the executor, what close rows and
   estimated failures need, within the budget;
5. the certified rows (value, band, evidence) and the gate's results are stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from auditor.certify.conformal import Calibration, UnitSample, calibrate, scales
from auditor.certify.fallback import benchmark_calibration
from auditor.certify.loop import certify
from auditor.certify.records import (
    calibration_row,
    disagreements,
    median_relative_error,
    store_certified,
)
from auditor.certify.sampling import sample_units
from auditor.certify.table import EffectTable, Unit
from auditor.execution.replay_driver import run_units
from auditor.execution.replay_units import can_replay, replay_units
from auditor.execution.spec import ReplaySettings
from auditor.policy.evaluate import expired_waivers, record_results
from auditor.policy.load import LoadedPolicy
from auditor.policy.metrics import ScoreContext, score_context
from auditor.policy.outcomes import GateResult, verdict_of

if TYPE_CHECKING:
    from auditor.execution.outcome import Executor
    from auditor.store import Store

Say = Callable[[str], None]

_ESTIMATES = """
SELECT s.stage_index, s.behaviour, s.direction, s.effect, s.metric_value, r.config_json
FROM stage_scores s JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND r.kind = 'attribution' AND s.model = ? AND s.version = ?
  AND s.estimator = ? AND s.config_hash = ?
QUALIFY row_number() OVER (PARTITION BY s.behaviour, s.stage_index
                           ORDER BY r.started_at DESC, s.run_id DESC) = 1
ORDER BY s.behaviour, s.stage_index
"""

_EXACT = """
SELECT s.stage_index, s.behaviour, s.effect FROM stage_scores s JOIN runs r USING (run_id)
WHERE r.status = 'complete' AND s.model = ? AND s.version = ? AND s.estimator = 'replay'
  AND s.evidence = 'exact'
QUALIFY row_number() OVER (PARTITION BY s.behaviour, s.stage_index
                           ORDER BY r.started_at DESC, s.run_id DESC) = 1
"""


@dataclass
class CertifySummary:
    key: str
    calibration_id: str | None = None
    calibration: Calibration | None = None
    fallback_id: str | None = None  # the benchmark's bands, for stages that cannot replay
    sampled: list[Unit] = field(default_factory=list)
    replayed: list[Unit] = field(default_factory=list)
    reused: list[Unit] = field(default_factory=list)
    spent: int = 0
    full: int = 0
    budget: float = math.inf
    messages: list[str] = field(default_factory=list)

    def counts(self, rows: list[dict]) -> dict[str, int]:
        found = {"estimate": 0, "exact": 0, "indeterminate": 0, "uncalibrated": 0}
        for row in rows:
            if row["outcome"] == "indeterminate":
                found["indeterminate"] += 1
            elif row["evidence"]:
                found[row["evidence"].split(" ")[0]] += 1
        return found


@dataclass
class _Source:
    table: EffectTable
    units: dict[int, object]  # stage index -> ReplayUnitItem
    replayable: bool


def certify_version(store: Store, key: str, loaded: LoadedPolicy, *, executor: Executor,
                    settings: ReplaySettings, estimator: str | None = None,
                    today: date | None = None, allow_indeterminate: bool = False,
                    say: Say | None = None, progress: bool = True, force: bool = False,
                    peers: list[str] | None = None) -> tuple[GateResult, CertifySummary]:
    """``peers``: the other versions of the audit — their units join the calibration pool (one
    stratum per stage kind over every version), so a few replayed units calibrate the rows of
    all; the same seeded sample is drawn for each version, and its replays are reused."""
    from auditor.policy.evaluate import gate

    say = say or (lambda _: None)
    today = today or datetime.now(timezone.utc).date()
    context = score_context(store, key, estimator or loaded.policy.estimator)
    summary = CertifySummary(key)
    if context.config_hash is None or settings.mode == "none":
        summary.messages.append("nothing to certify: gated on the stored scores as they are")
        return gate(store, key, loaded, estimator=estimator, today=today,
                    allow_indeterminate=allow_indeterminate), summary
    current = _source(store, key, context, settings.device)
    previous = _source(store, f"{context.model}@{context.previous}", context,
                       settings.device) if context.previous else None
    sources = {s.table.key: s for s in (current, previous) if s is not None}
    summary.full = sum(u.cost for s in sources.values() for u in s.table.units())
    summary.reused = [u for s in sources.values() for u in s.table.units()
                      if u.stage_index in s.table.exact]
    pool = {**sources, **_peers(store, peers or [], sources, context, settings.device)}
    replay = _replayer(store, pool, executor, say, progress, force, summary)
    calibration = _calibrate(store, pool, settings, context, replay, summary)
    fallback, fallback_id = _benchmark_bands(store, sources, settings, context, calibration,
                                             summary)
    for source in sources.values():
        source.table.apply_band(calibration, summary.calibration_id, fallback, fallback_id,
                                _unreplayable(source))
    summary.budget = settings.steps_budget(sum(current.table.steps))
    if settings.mode == "all":
        replay([u for s in sources.values() for u in s.table.units()
                if u.stage_index not in s.table.exact])
    budget = summary.budget if settings.mode == "decisive" else 0
    outcome = certify(current.table, previous.table if previous else None, loaded, context,
                      replay, budget=budget, confirm_fail=loaded.policy.confirm_fail_by_replay,
                      today=today, fidelity_passed=context.fidelity_passed or (
                          calibration is not None and calibration.source == "replay"),
                      can_replay=current.replayable)
    summary.replayed = outcome.replayed
    results = outcome.results
    verdict = verdict_of(results)
    summary.messages.extend(disagreements(store, current.table, context))
    certified_run = store_certified(store, current.table, context)
    run_id = record_results(store, loaded, context, results, verdict, today,
                            extra={"certified_run": certified_run,
                                   "calibration_id": summary.calibration_id})
    return GateResult(key, loaded.id, loaded.policy.version, loaded.hash, str(loaded.path),
                      context.estimator, context.config_hash, context.previous, verdict,
                      results, run_id, expired_waivers(loaded.policy, key, today),
                      allow_indeterminate, today.isoformat()), summary


def _source(store: Store, key: str, context: ScoreContext, device: str = "auto") -> _Source:
    version = store.get_version(key)
    model, name = key.split("@", 1)
    rows = store.query(_ESTIMATES, [model, name, context.estimator, context.config_hash])
    behaviours = list(dict.fromkeys(r["behaviour"] for r in rows))
    directions = {r["behaviour"]: r["direction"] for r in rows}
    K, Q = len(version.stages), len(behaviours)
    estimate = np.full((K, Q), np.nan)
    index = {b: q for q, b in enumerate(behaviours)}
    for r in rows:
        estimate[r["stage_index"], index[r["behaviour"]]] = np.nan if r["effect"] is None \
            else r["effect"]
    table = EffectTable(key, [s.id for s in version.stages], [s.kind for s in version.stages],
                        behaviours, [directions[b] for b in behaviours], estimate,
                        [s.steps for s in version.stages],
                        {s.id: {t for d in s.datasets for t in d.tags} for s in version.stages})
    table.metric_values = np.full(Q, np.nan)
    for r in rows:
        if r["metric_value"] is not None:
            table.metric_values[index[r["behaviour"]]] = r["metric_value"]
    exact: dict[int, dict[str, float]] = {}
    for r in store.query(_EXACT, [model, name]):
        exact.setdefault(r["stage_index"], {})[r["behaviour"]] = r["effect"]
    for k, found in exact.items():
        if all(b in found and found[b] is not None for b in behaviours):
            table.set_exact(k, np.array([found[b] for b in behaviours], dtype=float))
    config = json.loads(rows[0]["config_json"]) if rows else {}
    task, spec = config.get("task") or version.task, config.get("behaviours")
    info = next(i for i in store.list_versions(model=model) if i.key == key)
    units = {}
    if task and spec:
        from auditor.estimators import get_estimator
        from auditor.task import allowed_modules, vet_task

        if not config.get("task"):  # the lineage names it: data, vetted like the planner does
            vet_task(task, allowed_modules([spec]), source=f"the lineage of {key}")

        items = replay_units(version, Path(info.source or "."), task=task, behaviours=spec,
                             inputs_digest=config.get("inputs_digest", ""),
                             estimator_config_hash=get_estimator("replay").config_hash,
                             device=device)
        units = {item.stage_index: item for item in items if can_replay(version, item.stage_index)}
    return _Source(table, units, bool(units))


def _replayer(store, sources, executor, say, progress, force, summary):
    def replay(wanted: list[Unit]) -> dict[tuple[str, int], np.ndarray]:
        items = [sources[u.version].units[u.stage_index] for u in wanted
                 if u.stage_index in sources[u.version].units]
        found = run_units(items, executor, store, say=say, progress=progress, force=force)
        summary.spent += sum(u.cost for u in wanted if (u.version, u.stage_index) in found)
        out = {}
        for (version, k), effects in found.items():
            names = sources[version].table.behaviours
            out[(version, k)] = np.array([effects.get(b, np.nan) for b in names], dtype=float)
        return out
    return replay


def _calibrate(store, sources, settings: ReplaySettings, context: ScoreContext, replay,
               summary: CertifySummary) -> Calibration | None:
    cal = settings.calibration
    units = sorted((u for s in sources.values() for u in s.table.units()
                    if u.stage_index in s.units or u.stage_index in s.table.exact),
                   key=lambda u: u.key)  # one order, so every version of an audit draws alike
    if not units:
        summary.messages.append("no unit can be replayed (no batch log or no task): no band "
                                "calibrated on this model")
        return None
    full = sum(u.cost for u in units)
    sample = sample_units(units, fraction=cal.sample, minimum=cal.min, seed=cal.seed,
                          max_steps=cal.share * full)
    missing = [u for u in sample if u.stage_index not in sources[u.version].table.exact]
    for key, row in (replay(missing) if missing else {}).items():
        sources[key[0]].table.set_exact(key[1], row)
    samples = []
    for unit in sample:
        table = sources[unit.version].table
        scale = scales(table.estimate, cal.normalisation)[unit.stage_index]
        samples.append(UnitSample(unit.version, unit.stage_index, unit.stage_id,
                                  unit.stage_kind, table.estimate[unit.stage_index],
                                  table.exact[unit.stage_index], scale))
    summary.sampled = sample
    calibration = calibrate(samples, estimator=context.estimator,
                            config_hash=context.config_hash, alpha=1 - cal.coverage,
                            normalisation=cal.normalisation, pooling=cal.pooling,
                            strata=cal.strata, fallback=cal.fallback)
    summary.calibration = calibration
    summary.calibration_id = store.insert_calibration(calibration_row(
        calibration, context.model, median_relative_error(samples)))
    return calibration


def _peers(store: Store, keys: list[str], sources: dict, context: ScoreContext,
           device: str) -> dict[str, _Source]:
    """The audit's other versions scored under the same estimator configuration."""
    found = {}
    for key in keys:
        if key in sources or key in found:
            continue
        source = _source(store, key, context, device)
        if source.table.estimate.size and not np.isnan(source.table.estimate).all():
            found[key] = source
    return found


def _unreplayable(source: _Source) -> set[int]:
    """Stages whose unit cannot run (a later stage has no batch log, or there is no task)."""
    return {k for k in range(len(source.table.stage_ids))
            if k not in source.units and k not in source.table.exact}


def _benchmark_bands(store, sources, settings: ReplaySettings, context: ScoreContext,
                     calibration: Calibration | None, summary: CertifySummary
                     ) -> tuple[Calibration | None, str | None]:
    """Where a stage's unit cannot be replayed and this audit's replays gave its kind no
    band: the estimator's measured error on the shipped benchmark scenarios
    (auditor.certify.fallback), stored as a calibration of source ``benchmark``."""
    kinds = {s.table.stage_kinds[k] for s in sources.values() for k in _unreplayable(s)
             if calibration is None or not math.isfinite(
                 calibration.band(s.table.stage_kinds[k])[0])}
    if not kinds:
        return None, None
    cal = settings.calibration
    fallback = benchmark_calibration(context.estimator, context.config_hash,
                                     alpha=1 - cal.coverage, normalisation=cal.normalisation)
    if fallback is None:
        summary.messages.append(f"stages that cannot be replayed ({', '.join(sorted(kinds))}) "
                                f"have no band: the benchmark measured none for "
                                f"{context.estimator} with these settings (uncalibrated)")
        return None, None
    fallback_id = store.insert_calibration(calibration_row(fallback, context.model))
    summary.fallback_id = fallback_id
    summary.calibration_id = summary.calibration_id or fallback_id
    summary.calibration = summary.calibration or fallback
    summary.messages.append(f"stages that cannot be replayed ({', '.join(sorted(kinds))}): "
                            f"bands from {context.estimator}'s measured error on the benchmark "
                            "scenarios (not calibrated on this model)")
    return fallback, fallback_id
