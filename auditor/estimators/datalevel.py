"""Data-level attribution inside a stage (docs/maths.md#data-level-attribution): which examples did the harm.

A stage's change is exactly a weighted sum of its steps' inputs a_j = ν_j g_j + λ_c θ_j plus
terms in its entry state (θ_{s_k}, m_{s_k}). Given the adjoint (u, w) of a behaviour at the
stage's end — for ``aa`` the per-coordinate H0 factors times ∇f(θ_T), so u·D_k + w·M_k is the
``aa`` effect — the adjoint sweep back through the stage gives each step's weight vector W_j,
and every occurrence of example z in step j scores (ν_j/|B_j|)·W_jᵀ∇ℓ(z; θ_j), one jvp of the
per-example losses per step. Weight decay and the carried-in state are "stage-level": they are
reported beside the examples, not attributed to them. Scores plus the stage-level part add up to
the stage's effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.func import functional_call, jvp

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.propagation.dynamics import adam_preconditioner, adjoint_parts, step_vectors
from auditor.estimators.propagation.h0 import H0Propagator
from auditor.estimators.propagation.trajectory import (
    FactualStep,
    all_coefficients,
    exp_avg_sq,
    params_of,
    walk,
)
from auditor.estimators.scoring.gradients import behaviour_gradient
from auditor.lineage.counterfactual import final_model
from auditor.lineage.models import ModelVersion
from auditor.lineage.replay import seed_step
from auditor.lineage.sketching.layout import ParamLayout, load_flat, momentum_field
from auditor.lineage.sketching.loss import LossModule
from auditor.task import TrainingTask


@dataclass
class StageSteps:
    """The factual steps of one stage: θ_j, batch ids, seed, input a_j and Adam's p_j."""

    params: list[dict[str, torch.Tensor]]
    batches: list[object]
    ids: list[list[int]]
    seeds: list[int | None]
    inputs: list[torch.Tensor]  # a_j = ν_j g_j + λ_c θ_j (flat float64)
    preconds: list[torch.Tensor | None]


@dataclass
class ExampleScores:
    stage: str
    behaviour: str
    example_ids: np.ndarray  # distinct ids, most harmful first
    scores: np.ndarray  # summed over the example's occurrences in the stage
    stage_level: float  # weight decay and carried-in state, not attributable to data
    total: float  # scores.sum() + stage_level == the stage's effect on the behaviour

    def top(self, n: int = 10) -> list[tuple[int, float]]:
        return [(int(i), float(s)) for i, s in zip(self.example_ids[:n], self.scores[:n])]


def stage_steps(version: ModelVersion, root: str | Path, task: TrainingTask, k: int,
                layout: ParamLayout) -> StageSteps:
    coeffs = all_coefficients(version, root, layout)[k]
    stage = version.stages[k]
    out = StageSteps([], [], list(stage.batch_ids or []), [], [], [])

    def before(step: FactualStep, model) -> None:
        out.params.append({n: p.clone() for n, p in params_of(model).items()})
        out.batches.append(step.batch)
        out.seeds.append(step.seed)

    def after(step: FactualStep, model, optimizer) -> None:
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        theta = layout.flatten(out.params[-1])
        out.inputs.append(layout.flatten(grads) + coeffs.vector("lam_c", step.local_step) * theta)
        out.preconds.append(None if coeffs.kind == "sgd" else adam_preconditioner(
            exp_avg_sq(optimizer, model, layout), coeffs, step.local_step))

    if not stage.replayable:
        raise EstimatorError(f"stage {stage.id!r} has no batch log: data-level scores need it")
    walk(version, root, task, k, before, after, last=k)
    return out


def sweep(coeffs, steps: StageSteps, u: torch.Tensor, w: torch.Tensor):
    """Adjoint sweep back through the stage: per-step input weights, then (u_s, w_s)."""
    weights = [None] * len(steps.inputs)
    for j in reversed(range(len(steps.inputs))):
        vectors = step_vectors(coeffs, j, steps.preconds[j])
        u, w, weights[j] = adjoint_parts(vectors, u, w, None, input_only=True)
    return weights, u, w


def reconstruct_change(version: ModelVersion, root: str | Path, task: TrainingTask,
                       k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(data-form D_k, checkpoint D_k): D_k = Σ_j W_j ⊙ a_j + (A − 1) ⊙ θ_s + W_m ⊙ m_s."""
    layout = ParamLayout.of(task.build_model())
    coeffs = all_coefficients(version, root, layout)[k]
    steps = stage_steps(version, root, task, k, layout)
    ones, zeros = torch.ones(layout.total, dtype=torch.float64), torch.zeros(layout.total,
                                                                             dtype=torch.float64)
    weights, theta_weight, m_weight = sweep(coeffs, steps, ones, zeros)
    stage = version.stages[k]
    theta_s = load_flat(layout, stage.theta_start, root)
    m_s = load_flat(layout, stage.optimizer_start, root, momentum_field(stage))
    rebuilt = sum(wj * aj for wj, aj in zip(weights, steps.inputs)) + (theta_weight - 1) * theta_s
    rebuilt = rebuilt + m_weight * m_s
    actual = load_flat(layout, stage.theta_end, root) - theta_s
    return rebuilt, actual


def example_attribution(version: ModelVersion, root: str | Path, task: TrainingTask,
                        behaviours: list[Behaviour], stage: int | str,
                        propagation: str = "aa") -> list[ExampleScores]:
    """Per-example scores of stage ``stage`` for each behaviour.

    ``propagation``: how the stage's change travels to θ_T — ``"aa"`` (H0 factors; totals equal
    the ``aa`` effects) or ``"hessian"`` (the exact-HVP adjoint of ``aa-hessian`` with the fixed
    Adam preconditioner; totals equal its reverse-mode effects).
    """
    k = stage if isinstance(stage, int) else [s.id for s in version.stages].index(stage)
    changed = next((s for s in version.stages if s.changes is not None), None)
    if changed is not None:
        raise EstimatorError(f"example attribution does not handle stage {changed.id!r}, which "
                             "changes the parameter set; stage-level effects do")
    if propagation not in ("aa", "hessian"):
        raise EstimatorError(f"propagation must be 'aa' or 'hessian', not {propagation!r}")
    layout = ParamLayout.of(task.build_model())
    coefficients = all_coefficients(version, root, layout)
    steps = stage_steps(version, root, task, k, layout)
    model = final_model(version, root, task).eval()
    entry = _entry(version, root, layout, k)
    adjoint = (_h0_adjoint(version, root, layout, coefficients, k) if propagation == "aa"
               else _hessian_adjoint(version, root, task, k))
    results = []
    for behaviour in behaviours:
        u, w = adjoint(model, layout.flatten(behaviour_gradient(model, behaviour)))
        model.eval()
        results.append(_scores(version.stages[k].id, behaviour, coefficients[k], steps, task,
                               layout, u, w, entry))
    return results


def _h0_adjoint(version, root, layout, coefficients, k):
    propagator = H0Propagator(version, root, layout, coefficients)
    ones = torch.ones(layout.total, dtype=torch.float64)
    factor_d = propagator.run(k, ones, torch.zeros_like(ones))
    factor_m = propagator.run(k, torch.zeros_like(ones), ones)
    return lambda model, grad: (factor_d * grad, factor_m * grad)


def _hessian_adjoint(version, root, task, k):
    from auditor.estimators.aa_hessian import HessianEstimator
    from auditor.estimators.propagation.unrolled import record_trajectory, reverse_sweep

    problem = HessianEstimator(mode="reverse", adam="fixed").problem(version, root, task)
    trajectory = record_trajectory(problem)
    return lambda model, grad: reverse_sweep(problem, trajectory, model, grad)[k]


def _entry(version, root, layout, k):
    stage = version.stages[k]
    return (load_flat(layout, stage.theta_start, root),
            load_flat(layout, stage.optimizer_start, root, momentum_field(stage)),
            load_flat(layout, stage.theta_end, root))


def _scores(stage_id, behaviour, coeffs, steps: StageSteps, task, layout, u, w,
            entry) -> ExampleScores:
    theta_s, m_s, _ = entry
    weights, u_s, w_s = sweep(coeffs, steps, u, w)
    ids, values = [], []
    module = LossModule(task.build_model(), task, "none").train()
    stage_level = 0.0
    for j, weight in enumerate(weights):
        per_example = _per_example(module, steps, j, weight, layout) * coeffs.clip[j].item()
        count = per_example.numel()
        ids.extend(steps.ids[j])
        values.extend((per_example / count).tolist())
        stage_level += float(weight @ steps.inputs[j]) - float(per_example.sum()) / count
    # u·θ_e + w·m_e = Σ_j W_j·a_j + u_s·θ_s + w_s·m_s; the effect is u·D + w·M
    stage_level += float((u_s - u) @ theta_s + (w_s - w) @ m_s)
    order_ids, order_scores = _aggregate(ids, values)
    total = float(order_scores.sum()) + stage_level
    return ExampleScores(stage_id, behaviour.name, order_ids, order_scores, stage_level, total)


def _per_example(module: LossModule, steps: StageSteps, j: int, weight: torch.Tensor,
                 layout: ParamLayout) -> torch.Tensor:
    """∇ℓ(z; θ_j)·W_j for every example of step j (one jvp of the per-example losses)."""
    params = steps.params[j]
    primals = {f"inner.{n}": p for n, p in params.items()}
    tangent = {f"inner.{n}": t for n, t in layout.unflatten(weight, like=params).items()}

    def losses(p):
        return functional_call(module, p, (steps.batches[j],))

    if steps.seeds[j] is not None:
        seed_step(steps.seeds[j])
    _, directional = jvp(losses, (primals,), (tangent,))
    return directional.detach().double()


def _aggregate(ids: list[int], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    distinct, inverse = np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
    sums = np.zeros(len(distinct))
    np.add.at(sums, inverse, np.asarray(values))
    order = np.argsort(-sums, kind="stable")
    return distinct[order], sums[order]
