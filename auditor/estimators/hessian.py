"""``aa-hessian``: the curvature-aware unrolled estimator (docs/estimators.md §4.2), exact HVPs.

The displacement of stage k is propagated through every later step with the linearised step
map, H_t v computed exactly (double backward; ``torch.func`` variant in ``curvature``) at the
factual θ_t (replayed from the boundary checkpoints). Forward mode yields stage embeddings
(Σ_k (T − e_k) HVPs, shared by all behaviours); reverse mode runs one adjoint sweep per behaviour
(T HVPs each). ``mode="auto"`` takes reverse when fewer behaviours than stages are asked for.

Adam/AdamW (``adam``): ``fixed`` freezes the factual preconditioner p_t (forward or reverse);
``jacobian`` also propagates the second-moment difference δv; ``jacobian+shift`` (default,
measured best in bench/fidelity.py) adds the bias-correction step shift of ``carry``. The last two
run in forward mode. ``plugin=True`` scores f(θ_T) − f(θ_T − e_k).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.adamexact import propagate_forward_adam
from auditor.estimators.base import StageEffects, StageEmbeddings
from auditor.estimators.common import effects_record, embeddings_from_flat, settings_hash
from auditor.estimators.curvature import hessian_operator
from auditor.estimators.device import check_device, task_on
from auditor.estimators.gradients import behaviour_gradient, score_by_gradients
from auditor.estimators.layout import ParamLayout, stage_displacements
from auditor.estimators.plugin import score_by_plugin
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
AdamForm = Literal["fixed", "jacobian", "jacobian+shift"]
ADAM_FORMS = ("fixed", "jacobian", "jacobian+shift")


class UnrolledEstimator:
    """Shared by ``aa-hessian`` and ``aa-ggn``: they differ in the curvature operator."""

    name: ClassVar[str] = "aa-hessian"
    version: ClassVar[str] = "1"

    def __init__(self, mode: Mode = "auto", queries: int | None = None, plugin: bool = False,
                 adam: AdamForm = "jacobian+shift", device: str = "auto"):
        if mode not in ("auto", "forward", "reverse"):
            raise EstimatorError(f"{self.name}: mode must be auto, forward or reverse, not {mode!r}")
        if plugin and mode == "reverse":
            raise EstimatorError(f"{self.name}: the plug-in form needs embeddings (forward mode)")
        if adam not in ADAM_FORMS:
            raise EstimatorError(f"{self.name}: adam must be one of {', '.join(ADAM_FORMS)}")
        self.mode = mode
        self.queries = queries
        self.plugin = bool(plugin)
        self.adam = adam
        self.device = check_device(device)  # not in the config hash: same numbers up to rounding

    def settings(self) -> dict[str, Any]:
        """The settings that change the numbers (the mode changes only the cost)."""
        return {"plugin": self.plugin, "adam": self.adam}

    @property
    def config_hash(self) -> str:
        return settings_hash(self.name, self.version, self.settings())

    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        """The curvature product of one step, and the loss reduction it needs."""
        return hessian_operator, "mean"

    def plan_for(self, queries: int) -> None:
        """Called by ``attribute`` with the number of behaviours (decides ``auto``)."""
        self.queries = queries

    def chosen_mode(self, version: ModelVersion) -> str:
        adam = any(s.optimizer.kind != "sgd" for s in version.stages[1:])
        needs_forward = self.plugin or (adam and self.adam != "fixed")
        if self.mode == "reverse" and needs_forward:
            raise EstimatorError(f"{self.name}: reverse mode needs plugin=False and, for Adam "
                                 "stages, adam='fixed'")
        if self.mode != "auto" or needs_forward:
            return "forward" if needs_forward else self.mode
        few = self.queries is not None and self.queries < len(version.stages) - 1
        return "reverse" if few else "forward"

    def problem(self, version: ModelVersion, root: str | Path, task: TrainingTask) -> Problem:
        task = task_on(task, self.device)
        layout = ParamLayout.of(task.build_model())
        operator, reduction = self.curvature_operator()
        return Problem(version, Path(root), task, layout, all_coefficients(version, root, layout),
                       stage_displacements(version, root, layout), operator, reduction)

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        problem = self.problem(version, root, task)
        mode = self.chosen_mode(version)
        if mode == "forward":
            flats = (propagate_forward(problem) if self.adam == "fixed" else
                     propagate_forward_adam(problem, shift=self.adam == "jacobian+shift"))
            return embeddings_from_flat(self, version, problem.layout, flats, started,
                                        {"mode": "forward"})
        trajectory = record_trajectory(problem)
        return embeddings_from_flat(self, version, problem.layout, problem.displacements.changes,
                                    started, {"mode": "reverse", "problem": problem,
                                              "trajectory": trajectory})

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        if self.plugin:
            return score_by_plugin(embeddings, behaviours, model)
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
