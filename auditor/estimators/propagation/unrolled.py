"""Unrolled propagation of stage displacements through the later steps, with curvature
(docs/maths.md#unrolled-propagation).

Forward mode pushes every stage's (D_k, M_k) through the steps after it, one curvature product
per step and stage: the results are stage embeddings shared by all behaviours. Reverse mode pulls
one behaviour's gradient back through all steps once (the adjoint) and reads every stage's effect
off at its boundary: cheaper when there are fewer behaviours than stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditor.estimators.curvature.products import Operator
from auditor.estimators.propagation.dynamics import (
    StageCoefficients,
    adam_preconditioner,
    adjoint_step,
    forward_step,
    step_vectors,
)
from auditor.estimators.propagation.trajectory import FactualStep, exp_avg_sq, params_of, walk
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.merges import flat_merges
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout, StageDisplacements
from auditor.lineage.sketching.loss import LossModule
from auditor.lineage.sketching.union import LineageLayout
from auditor.task import TrainingTask

OperatorFactory = Callable[[LossModule, dict, Any, "int | None", ParamLayout], Operator]


@dataclass
class Problem:
    version: ModelVersion
    root: Path
    task: TrainingTask
    layout: ParamLayout
    coefficients: list[StageCoefficients]
    displacements: StageDisplacements
    operator: OperatorFactory
    reduction: str = "mean"
    # each stage's parameters in ``layout`` when the lineage changes the parameter set
    # (auditor.lineage.sketching.union); None: every stage has ``layout``
    views: tuple[ParamLayout, ...] | None = None
    lineage: LineageLayout | None = None

    def view(self, stage_index: int) -> ParamLayout:
        return self.layout if self.views is None else self.views[stage_index]

    def merge_map(self, stage_index: int):
        """Stage ``stage_index``'s recorded adapter merges on a flat tangent, or None
        (docs/maths.md#merged-adapters)."""
        change = self.version.stages[stage_index].changes
        if change is None or not change.merges:
            return None
        ends = load_tensors(self.version.stages[stage_index - 1].theta_end, self.root)
        return flat_merges(change.merges, self.view(stage_index - 1).offsets(), ends)


def propagate_forward(problem: Problem) -> list[torch.Tensor]:
    """e_k for every stage: δ_T of the tangent started at (D_k, M_k) at step e_k."""
    disp, stages = problem.displacements, problem.version.stages
    last = len(stages) - 1
    if last == 0:
        return [disp.changes[0].clone()]
    tangents: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    pending: dict[int, torch.Tensor] = {}

    def before(step: FactualStep, model: nn.Module) -> None:
        if step.local_step == 0:
            k = step.stage_index - 1
            tangents[k] = (disp.changes[k].clone(), disp.momenta[k].clone())
            merge = problem.merge_map(step.stage_index)
            if merge is not None:
                for i, (d, dm) in list(tangents.items()):
                    tangents[i] = (merge(d), dm)
        op = problem.operator(_ensure_module(problem, model), params_of(model), step.batch,
                              step.seed, problem.view(step.stage_index))
        for k, (d, _) in tangents.items():
            pending[k] = op(d)

    def after(step: FactualStep, model: nn.Module, optimizer) -> None:
        coeffs = problem.coefficients[step.stage_index]
        vectors = step_vectors(coeffs, step.local_step, _precond(coeffs, step, model, optimizer,
                                                                 problem.view(step.stage_index)))
        for k, (d, dm) in list(tangents.items()):
            hd = pending.pop(k)
            tangents[k] = forward_step(vectors, d, dm, lambda _v, hd=hd: hd)

    walk(problem.version, problem.root, problem.task, 1, before, after)
    return [tangents[k][0] for k in range(last)] + [disp.changes[last].clone()]


def _ensure_module(problem: Problem, model: nn.Module) -> LossModule:
    cached = getattr(problem, "_module", None)
    if cached is None or cached.inner is not model:
        cached = LossModule(model, problem.task, problem.reduction)
        problem._module = cached
    return cached


def _precond(coeffs: StageCoefficients, step: FactualStep, model, optimizer,
             layout: ParamLayout) -> torch.Tensor | None:
    if coeffs.kind == "sgd":
        return None
    return adam_preconditioner(exp_avg_sq(optimizer, model, layout), coeffs, step.local_step)


@dataclass
class StoredStep:
    stage_index: int
    local_step: int
    params: dict[str, torch.Tensor]
    batch: Any
    seed: int | None
    precond: torch.Tensor | None


def record_trajectory(problem: Problem) -> list[StoredStep]:
    """θ_t, batch, seed and p_t of every step after the first stage (O(T·P) memory)."""
    steps: list[StoredStep] = []

    def before(step: FactualStep, model: nn.Module) -> None:
        params = {n: p.clone() for n, p in params_of(model).items()}
        steps.append(StoredStep(step.stage_index, step.local_step, params, step.batch,
                                step.seed, None))

    def after(step: FactualStep, model: nn.Module, optimizer) -> None:
        coeffs = problem.coefficients[step.stage_index]
        steps[-1].precond = _precond(coeffs, step, model, optimizer,
                                     problem.view(step.stage_index))

    if len(problem.version.stages) > 1:
        walk(problem.version, problem.root, problem.task, 1, before, after)
    return steps


def reverse_sweep(problem: Problem, trajectory: list[StoredStep], model: nn.Module,
                  gradient: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Adjoints (u_{e_k}, w_{e_k}) at every stage end for one behaviour's gradient at θ_T."""
    last = len(problem.version.stages) - 1
    adjoints = {last: (gradient.clone(), torch.zeros_like(gradient))}
    u, w = adjoints[last]
    module = LossModule(model, problem.task, problem.reduction).train()
    for stored in reversed(trajectory):
        coeffs = problem.coefficients[stored.stage_index]
        op = problem.operator(module, stored.params, stored.batch, stored.seed, problem.layout)
        u, w = adjoint_step(step_vectors(coeffs, stored.local_step, stored.precond), u, w, op)
        if stored.local_step == 0:
            adjoints[stored.stage_index - 1] = (u, w)
    return adjoints


def propagate_reverse(problem: Problem, trajectory: list[StoredStep], model: nn.Module,
                      gradient: torch.Tensor) -> list[float]:
    """Effects of every stage on one behaviour: u_{e_k}·D_k + w_{e_k}·M_k."""
    disp = problem.displacements
    adjoints = reverse_sweep(problem, trajectory, model, gradient)
    return [float(adjoints[k][0] @ disp.changes[k] + adjoints[k][1] @ disp.momenta[k])
            for k in range(len(problem.version.stages))]
