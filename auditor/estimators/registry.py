"""The estimator registry (an explicit dict) and the one-call ``attribute``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.aa import AAEstimator
from auditor.estimators.base import Estimator, StageEffects
from auditor.estimators.device import task_on
from auditor.estimators.ggn import GGNEstimator
from auditor.estimators.hessian import HessianEstimator
from auditor.estimators.naive import NaiveEstimator
from auditor.estimators.replay import ReplayEstimator
from auditor.estimators.stationary import StationaryEstimator
from auditor.estimators.tracin import TracInEstimator
from auditor.lineage.checkpoints import load_model_state, load_tensors
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

ESTIMATORS: dict[str, type] = {
    cls.name: cls for cls in (ReplayEstimator, AAEstimator, HessianEstimator, GGNEstimator,
                              NaiveEstimator, TracInEstimator, StationaryEstimator)
}
DEFAULT = AAEstimator.name


def get_estimator(name: str, **settings: Any) -> Estimator:
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ESTIMATORS))
        raise EstimatorError(f"unknown estimator {name!r} (known: {known})") from None
    try:
        return cls(**settings)
    except TypeError as exc:  # a setting the estimator does not take
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        what = f"no setting {unknown.group(1)!r}" if unknown else f"bad settings ({exc})"
        raise EstimatorError(f"estimator {name!r} has {what}; see docs/estimators.md") from None


def final_model(version: ModelVersion, root: str | Path, task: TrainingTask):
    model = task.build_model()
    last = version.stages[-1].theta_end
    load_model_state(model, load_tensors(last, root), source=last.uri)
    return model


def attribute(version: ModelVersion, root: str | Path, task: TrainingTask,
              behaviours: list[Behaviour], estimator: str | Estimator = "aa",
              **settings: Any) -> StageEffects:
    """Prepare stage embeddings of ``version`` and score ``behaviours`` with them."""
    chosen = get_estimator(estimator, **settings) if isinstance(estimator, str) else estimator
    if hasattr(chosen, "plan_for"):
        chosen.plan_for(len(behaviours))
    embeddings = chosen.prepare(version, root, task)
    device_task = task_on(task, getattr(chosen, "device", "cpu"))
    return chosen.score(embeddings, behaviours, final_model(version, root, device_task))
