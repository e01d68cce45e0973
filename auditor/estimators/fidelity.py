"""``verify_by_replay``: a spot check of an estimator against exact leave-stage-out replay.

It replays chosen stages (default: all), compares the estimator's effects with the exact ones on
those stages, and returns a ``FidelityCheck`` whose fields are the columns of the store's
``fidelity_checks`` table (docs/contracts.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import StageEffects
from auditor.estimators.registry import attribute
from auditor.estimators.replay import ReplayEstimator
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

MIN_PEARSON = 0.9
MIN_SIGN_AGREEMENT = 0.8


@dataclass(frozen=True)
class FidelityCheck:
    estimator: str
    config_hash: str
    stages_checked: int
    behaviours_checked: int
    pearson: float
    sign_agreement: float
    max_abs_error: float
    passed: bool

    def row(self) -> dict:
        return asdict(self)

    def table(self, model: str, version: str, checked_at: datetime | None = None) -> pa.Table:
        """One row for the store's ``fidelity_checks`` (``Store.insert_fidelity_checks`` or
        ``record_run(..., fidelity_checks=...)`` add the run id)."""
        row = {"model": model, "version": version, **self.row(),
               "checked_at": checked_at or datetime.now(timezone.utc)}
        return pa.Table.from_pylist([row])


def stage_indices(version: ModelVersion, stages: Sequence[int | str] | None) -> list[int]:
    ids = [s.id for s in version.stages]
    if stages is None:
        return list(range(len(ids)))
    chosen = []
    for stage in stages:
        if isinstance(stage, str):
            if stage not in ids:
                raise EstimatorError(f"{version.key} has no stage {stage!r}")
            stage = ids.index(stage)
        if not 0 <= stage < len(ids):
            raise EstimatorError(f"stage index {stage} out of range for {version.key}")
        chosen.append(stage)
    return sorted(set(chosen))


def compare(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Pearson r, sign agreement and max |error| over all entries."""
    a, b = estimate.ravel(), truth.ravel()
    if a.size >= 2 and a.std() > 0 and b.std() > 0:
        pearson = float(np.corrcoef(a, b)[0, 1])
    else:  # too few or constant entries: agreement within 10% counts as r = 1
        pearson = float(np.allclose(a, b, rtol=0.1, atol=1e-12))
    return pearson, float(np.mean(np.sign(a) == np.sign(b))), float(np.abs(a - b).max())


def verify_by_replay(version: ModelVersion, root: str | Path, task: TrainingTask,
                     behaviours: list[Behaviour], effects: StageEffects,
                     stages: Sequence[int | str] | None = None, *,
                     min_pearson: float = MIN_PEARSON,
                     min_sign_agreement: float = MIN_SIGN_AGREEMENT) -> FidelityCheck:
    chosen = stage_indices(version, stages)
    by_name = {b.name: b for b in behaviours}
    missing = [name for name in effects.behaviours if name not in by_name]
    if missing:
        raise EstimatorError(f"verify_by_replay: behaviours {missing[:3]} were not given")
    ordered = [by_name[name] for name in effects.behaviours]
    truth = attribute(version, root, task, ordered, ReplayEstimator(stages=chosen)).effects
    pearson, signs, error = compare(effects.effects[chosen], truth[chosen])
    return FidelityCheck(effects.estimator, effects.config_hash, len(chosen), len(ordered),
                         pearson, signs, error,
                         bool(pearson >= min_pearson and signs >= min_sign_agreement))
