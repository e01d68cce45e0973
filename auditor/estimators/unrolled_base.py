"""The unrolled estimators' shared base: ``aa-hessian`` and ``aa-ggn`` differ in the curvature.

The displacement of stage k is propagated through every later step with the linearised step
map (docs/maths.md#unrolled-propagation), the curvature product taken at the factual θ_t
(replayed from the boundary checkpoints). Forward mode yields stage embeddings (Σ_k (T − e_k)
curvature products, shared by all behaviours); reverse mode runs one adjoint sweep per behaviour
(T products each). ``mode="auto"`` takes reverse when fewer behaviours than stages are asked for.

Adam/AdamW (``adam``, docs/maths.md#adam-beyond-the-fixed-preconditioner): ``fixed`` freezes the
factual preconditioner p_t (forward or reverse); ``jacobian`` also propagates the second-moment
difference δv; ``jacobian+shift`` (default, measured best in bench/fidelity.py) adds the
bias-correction step shift of ``carry``. The last two run in forward mode. ``plugin=True``
scores f(θ_T) − f(θ_T − e_k).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import Estimator, EstimatorState, StageEffects, StageEmbeddings
from auditor.estimators.device import task_on
from auditor.estimators.propagation.adam import propagate_forward_adam
from auditor.estimators.propagation.trajectory import all_coefficients
from auditor.estimators.propagation.unrolled import (
    OperatorFactory,
    Problem,
    StoredStep,
    propagate_forward,
    propagate_reverse,
    record_trajectory,
)
from auditor.estimators.records import effects_record, embeddings_from_flat
from auditor.estimators.scoring.gradients import behaviour_gradient, score_by_gradients
from auditor.estimators.scoring.plugin import score_by_plugin
from auditor.estimators.settings import EstimatorSettings, check_bool, replace_setting, setting
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import stage_displacements
from auditor.lineage.sketching.union import lineage_layout
from auditor.task import TrainingTask

MODES = ("auto", "forward", "reverse")
ADAM_FORMS = ("fixed", "jacobian", "jacobian+shift")


@dataclass(frozen=True)
class UnrolledSettings(EstimatorSettings):
    estimator: ClassVar[str] = "aa-hessian"

    mode: str = setting("auto", "forward (stage embeddings), reverse (one adjoint sweep per "
                        "behaviour) or auto (reverse when fewer behaviours than stages); not in "
                        "the config hash (it changes only the cost)", hashed=False)
    queries: int | None = setting(None, "the number of behaviours mode=auto plans for (set by "
                                  "attribute); not in the config hash", hashed=False)
    plugin: bool = setting(False, "score f(θ_T) − f(θ_T − e_k) instead of ∇f(θ_T)·e_k "
                           "(forward mode)")
    adam: str = setting("jacobian+shift", "the Adam/AdamW form: fixed, jacobian or "
                        "jacobian+shift (the last two in forward mode)")

    def __post_init__(self) -> None:
        super().__post_init__()
        name = self.estimator
        if self.mode not in MODES:
            raise EstimatorError(f"{name}: mode must be auto, forward or reverse, not "
                                 f"{self.mode!r}")
        replace_setting(self, "plugin", check_bool(name, "plugin", self.plugin))
        if self.plugin and self.mode == "reverse":
            raise EstimatorError(f"{name}: the plug-in form needs embeddings (forward mode)")
        if self.adam not in ADAM_FORMS:
            raise EstimatorError(f"{name}: adam must be one of {', '.join(ADAM_FORMS)}")
        if self.queries is not None and (isinstance(self.queries, bool)
                                         or not isinstance(self.queries, int)):
            raise EstimatorError(f"{name}: queries must be a number of behaviours")


@dataclass
class UnrolledState(EstimatorState):
    """Forward mode: the vectors are the stage embeddings."""

    mode: ClassVar[str | None] = "forward"

    def portable(self) -> list[str]:
        return ["mode"]


@dataclass
class ReverseState(EstimatorState):
    """Reverse mode: the vectors are the raw D_k; scoring sweeps back along the trajectory."""

    embeddings: ClassVar[bool] = False
    mode: ClassVar[str | None] = "reverse"
    problem: Problem
    trajectory: list[StoredStep]


class UnrolledEstimator(Estimator):
    """Shared by ``aa-hessian`` and ``aa-ggn``: they differ in ``curvature_operator``."""

    Settings = UnrolledSettings
    handles_parameter_changes: ClassVar[bool] = True
    handles_merges: ClassVar[bool] = True
    settings: UnrolledSettings

    def __init__(self, settings: UnrolledSettings | None = None, /, **values: Any):
        super().__init__(settings, **values)
        self.queries = self.settings.queries

    @abstractmethod
    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        """The curvature product of one step, and the loss reduction it needs."""

    def plan_for(self, queries: int) -> None:
        """Called by ``attribute`` with the number of behaviours (decides ``auto``)."""
        self.queries = queries

    def chosen_mode(self, version: ModelVersion) -> str:
        mode, adam_form = self.settings.mode, self.settings.adam
        adam = any(s.optimizer.kind != "sgd" for s in version.stages[1:])
        changes = any(s.changes is not None for s in version.stages)
        needs_forward = self.settings.plugin or (adam and adam_form != "fixed") or changes
        if mode == "reverse" and changes:
            raise EstimatorError(f"{self.name}: reverse mode does not handle stages that change "
                                 "the parameter set; use mode='forward' (or auto)")
        if mode == "reverse" and needs_forward:
            raise EstimatorError(f"{self.name}: reverse mode needs plugin=False and, for Adam "
                                 "stages, adam='fixed'")
        if mode != "auto" or needs_forward:
            return "forward" if needs_forward else mode
        few = self.queries is not None and self.queries < len(version.stages) - 1
        return "reverse" if few else "forward"

    def problem(self, version: ModelVersion, root: str | Path, task: TrainingTask) -> Problem:
        task = task_on(task, self.device)
        lineage = lineage_layout(task, version)  # stages that add adapters: their union
        layout, views = lineage.union, (lineage.views if lineage.changes else None)
        operator, reduction = self.curvature_operator()
        return Problem(version, Path(root), task, layout,
                       all_coefficients(version, root, layout, views),
                       stage_displacements(version, root, layout, views), operator, reduction,
                       views, lineage)

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        problem = self.problem(version, root, task)
        mode = self.chosen_mode(version)
        if mode == "forward":
            adam = self.settings.adam
            flats = (propagate_forward(problem) if adam == "fixed" else
                     propagate_forward_adam(problem, shift=adam == "jacobian+shift"))
            lineage = problem.lineage
            return embeddings_from_flat(self, version, lineage.final,
                                        [lineage.final_part(f) for f in flats], started,
                                        UnrolledState())
        trajectory = record_trajectory(problem)
        return embeddings_from_flat(self, version, problem.layout, problem.displacements.changes,
                                    started, ReverseState(problem, trajectory))

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        if self.settings.plugin:
            return score_by_plugin(embeddings, behaviours, model)
        if not isinstance(embeddings.state, ReverseState):
            return score_by_gradients(embeddings, behaviours, model)
        return _score_reverse(embeddings, embeddings.state, behaviours, model)


def _score_reverse(embeddings: StageEmbeddings, state: ReverseState,
                   behaviours: list[Behaviour], model: torch.nn.Module) -> StageEffects:
    started = time.perf_counter()
    problem = state.problem
    effects = np.zeros((len(embeddings.stages), len(behaviours)))
    for q, behaviour in enumerate(behaviours):
        model.eval()
        gradient = problem.layout.flatten(behaviour_gradient(model, behaviour))
        model.train()
        effects[:, q] = propagate_reverse(problem, state.trajectory, model, gradient)
    return effects_record(embeddings, behaviours, model, effects, started)
