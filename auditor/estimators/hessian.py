"""``aa-hessian``: the curvature-aware unrolled estimator (docs/estimators.md §4.2), exact HVPs.

The displacement of stage k is propagated through every later step with the linearised step
map, H_t v computed exactly by ``torch.func`` at the factual θ_t (replayed from the boundary
checkpoints). Forward mode yields stage embeddings (Σ_k (T − e_k) HVPs, shared by all behaviours);
reverse mode runs one adjoint sweep per behaviour (T HVPs each). ``mode="auto"`` takes reverse
when fewer behaviours than stages are asked for. Adam's preconditioner is the factual p_t.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import StageEffects, StageEmbeddings
from auditor.estimators.common import effects_record, embeddings_from_flat, settings_hash
from auditor.estimators.curvature import hessian_operator
from auditor.estimators.gradients import behaviour_gradient, score_by_gradients
from auditor.estimators.layout import ParamLayout, stage_displacements
from auditor.estimators.trajectory import all_coefficients
from auditor.estimators.unrolled import (
    OperatorFactory,
    Problem,
    propagate_forward,
    propagate_reverse,
    record_trajectory,
)
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

Mode = Literal["auto", "forward", "reverse"]


class UnrolledEstimator:
    """Shared by ``aa-hessian`` and ``aa-ggn``: they differ in the curvature operator."""

    name: ClassVar[str] = "aa-hessian"
    version: ClassVar[str] = "1"
    operator: ClassVar[OperatorFactory] = staticmethod(hessian_operator)
    reduction: ClassVar[str] = "mean"

    def __init__(self, mode: Mode = "auto", queries: int | None = None):
        if mode not in ("auto", "forward", "reverse"):
            raise EstimatorError(f"{self.name}: mode must be auto, forward or reverse, not {mode!r}")
        self.mode = mode
        self.queries = queries

    @property
    def config_hash(self) -> str:  # the mode changes cost, not the numbers
        return settings_hash(self.name, self.version, {})

    def plan_for(self, queries: int) -> None:
        """Called by ``attribute`` with the number of behaviours (decides ``auto``)."""
        self.queries = queries

    def chosen_mode(self, stages: int) -> str:
        if self.mode != "auto":
            return self.mode
        return "reverse" if self.queries is not None and self.queries < stages - 1 else "forward"

    def problem(self, version: ModelVersion, root: str | Path, task: TrainingTask) -> Problem:
        layout = ParamLayout.of(task.build_model())
        return Problem(version, Path(root), task, layout, all_coefficients(version, root, layout),
                       stage_displacements(version, root, layout), type(self).operator,
                       self.reduction)

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        problem = self.problem(version, root, task)
        mode = self.chosen_mode(len(version.stages))
        if mode == "forward":
            flats = propagate_forward(problem)
            return embeddings_from_flat(self, version, problem.layout, flats, started,
                                        {"mode": "forward"})
        trajectory = record_trajectory(problem)
        return embeddings_from_flat(self, version, problem.layout, problem.displacements.changes,
                                    started, {"mode": "reverse", "problem": problem,
                                              "trajectory": trajectory})

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        if embeddings.extra.get("mode") != "reverse":
            return score_by_gradients(embeddings, behaviours, model)
        return _score_reverse(embeddings, behaviours, model)


def _score_reverse(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                   model: torch.nn.Module) -> StageEffects:
    started = time.perf_counter()
    problem: Problem = embeddings.extra["problem"]
    trajectory = embeddings.extra["trajectory"]
    effects = np.zeros((len(embeddings.stages), len(behaviours)))
    for q, behaviour in enumerate(behaviours):
        model.eval()
        gradient = problem.layout.flatten(behaviour_gradient(model, behaviour))
        model.train()
        effects[:, q] = propagate_reverse(problem, trajectory, model, gradient)
    return effects_record(embeddings, behaviours, model, effects, started)

class HessianEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-hessian"
