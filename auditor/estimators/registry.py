"""The estimator registry, built from the ``Estimator`` subclasses, and the one-call ``attribute``.

Importing this module imports every estimator module, so ``ESTIMATORS`` holds each concrete
subclass that names itself, in the order below. Every list of estimator names (the CLI help,
docs/estimators.md, docs/contracts.md) is generated from it or tested against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators import aa, aa_ggn, aa_hessian, naive, replay, tracin  # noqa: F401
from auditor.estimators.base import Estimator, StageEffects
from auditor.estimators.device import task_on
from auditor.lineage.counterfactual import final_model
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

ESTIMATORS: dict[str, type[Estimator]] = {cls.name: cls for cls in Estimator.registered()}
DEFAULT = aa.AAEstimator.name


def get_estimator(name: str, **settings: Any) -> Estimator:
    """The estimator ``name`` with ``settings`` (its Settings' field names)."""
    try:
        cls = ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ESTIMATORS))
        raise EstimatorError(f"unknown estimator {name!r} (known: {known})") from None
    return cls(**settings)


def attribute(version: ModelVersion, root: str | Path, task: TrainingTask,
              behaviours: list[Behaviour], estimator: str | Estimator = DEFAULT,
              **settings: Any) -> StageEffects:
    """Prepare stage embeddings of ``version`` and score ``behaviours`` with them."""
    chosen = get_estimator(estimator, **settings) if isinstance(estimator, str) else estimator
    _check_parameter_changes(chosen, version)
    chosen.plan_for(len(behaviours))
    embeddings = chosen.prepare(version, root, task)
    device_task = task_on(task, chosen.device)
    return chosen.score(embeddings, behaviours, final_model(version, root, device_task))


def _check_parameter_changes(chosen: Estimator, version: ModelVersion) -> None:
    """Refuse, naming the stage and a tensor, a lineage whose parameter set changes (a LoRA
    stage) for an estimator that would silently misread it."""
    for stage in version.stages:
        change = stage.changes
        if change is None:
            continue
        if not chosen.handles_parameter_changes:
            names = [*change.added, *change.renamed.values(), *change.removed,
                     *change.recomputed]
            raise EstimatorError(
                f"estimator {chosen.name!r} cannot attribute {version.key}: stage {stage.id!r} "
                f"changes the parameter set (e.g. {names[0]!r}); use replay")
        described = {merge.weight for merge in change.merges}
        if chosen.recomputes_any:
            continue
        if change.merges and not chosen.handles_merges:
            raise EstimatorError(
                f"estimator {chosen.name!r} cannot attribute {version.key}: stage {stage.id!r} "
                f"merges adapters into {change.merges[0].weight!r}; use replay")
        undescribed = [name for name in change.recomputed if name not in described]
        if undescribed:
            raise EstimatorError(
                f"estimator {chosen.name!r} cannot attribute {version.key}: stage {stage.id!r} "
                f"merges adapters into {undescribed[0]!r} (recomputes=) without a recorded "
                "merge description; use replay")
