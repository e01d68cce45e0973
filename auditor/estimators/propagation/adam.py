"""Adam/AdamW beyond the fixed preconditioner, forward mode only
(docs/maths.md#adam-beyond-the-fixed-preconditioner).

``jacobian``: the second-moment difference δv is propagated too,
  δv' = β₂δv + 2(1−β₂)·g ⊙ a,   and the update's derivative in v adds
  + (η/c1)·m' ⊙ p² ⊙ δv' / (2·c2·√(v'/c2))  to δ' (with the carried V_k = v_{e_k} − v_{s_k}).
``shift``: under ``carry`` the run without stage k counts n_k fewer Adam steps, so every later
carried step's bias corrections differ: the forcing term −(u(m', v', n) − u(m', v', n − n_k)),
u = (η/c1(n))·m' / (√(v'/c2(n)) + ε), until the next reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from auditor.estimators.propagation.dynamics import StageCoefficients, StepVectors, forward_step
from auditor.estimators.propagation.trajectory import FactualStep, params_of, walk
from auditor.estimators.propagation.unrolled import Problem, _ensure_module
from auditor.lineage.sketching.layout import load_flat


@dataclass
class Tangent:
    d: torch.Tensor
    dm: torch.Tensor
    dv: torch.Tensor
    removed_steps: int
    chained: bool = True  # no reset since the removed stage: the step-count shift applies


def _moments(optimizer, model: nn.Module, layout, field: str) -> torch.Tensor:
    by_name = dict(model.named_parameters())
    tensors = {}
    for name in layout.names:
        state = optimizer.state.get(by_name[name])
        if state and field in state:
            tensors[name] = state[field]
    return layout.flatten(tensors)


def _second_moment_changes(problem: Problem) -> list[torch.Tensor]:
    stages = problem.version.stages
    out = []
    for k, stage in enumerate(stages):
        layout = problem.view(k)
        carried = k + 1 < len(stages) and stages[k + 1].convention == "carry"
        if not carried or stage.optimizer.kind == "sgd":
            out.append(torch.zeros(layout.total, dtype=torch.float64))
            continue
        end = load_flat(layout, stage.optimizer_end, problem.root, ".exp_avg_sq")
        start = load_flat(layout, stage.optimizer_start, problem.root, ".exp_avg_sq")
        out.append(end - start)
    return out


def propagate_forward_adam(problem: Problem, shift: bool) -> list[torch.Tensor]:
    disp, stages = problem.displacements, problem.version.stages
    last = len(stages) - 1
    if last == 0:
        return [disp.changes[0].clone()]
    changes_v = _second_moment_changes(problem)
    tangents: dict[int, Tangent] = {}
    pending: dict[int, torch.Tensor] = {}
    thetas: list[torch.Tensor] = []

    def before(step: FactualStep, model: nn.Module) -> None:
        if step.local_step == 0:
            k = step.stage_index - 1
            tangents[k] = Tangent(disp.changes[k].clone(), disp.momenta[k].clone(),
                                  changes_v[k].clone(), stages[k].steps)
            if stages[step.stage_index].convention == "reset":
                for tangent in tangents.values():
                    tangent.chained = False
            merge = problem.merge_map(step.stage_index)
            if merge is not None:
                for tangent in tangents.values():
                    tangent.d = merge(tangent.d)
        view = problem.view(step.stage_index)
        thetas[:] = [view.flatten(params_of(model))]
        op = problem.operator(_ensure_module(problem, model), params_of(model), step.batch,
                              step.seed, view)
        for k, tangent in tangents.items():
            pending[k] = op(tangent.d)

    def after(step: FactualStep, model: nn.Module, optimizer) -> None:
        coeffs = problem.coefficients[step.stage_index]
        factual = _Factual(coeffs, step.local_step, model, optimizer, problem, thetas[0],
                           step.stage_index)
        for k, tangent in tangents.items():
            _step(factual, tangent, pending.pop(k), shift)

    walk(problem.version, problem.root, problem.task, 1, before, after)
    return [tangents[k].d for k in range(last)] + [disp.changes[last].clone()]


class _Factual:
    """The factual step's quantities: coefficient vectors, g (as Adam saw it), m', v'."""

    def __init__(self, coeffs: StageCoefficients, t: int, model, optimizer, problem, theta,
                 step_index: int):
        layout = problem.view(step_index)
        self.kind = coeffs.kind
        self.reset = coeffs.reset and t == 0
        self.nu = float(coeffs.clip[t])
        vec = {k: coeffs.vector(k, t) for k in ("eta", "lam_c", "lam_d", "mu", "c", "na", "nm",
                                                "beta1", "beta2", "c1", "c2", "eps", "active",
                                                "count")}
        self.__dict__.update(vec)
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        self.g = layout.flatten(grads) + self.lam_c * theta
        if self.kind != "sgd":
            self.m = _moments(optimizer, model, layout, "exp_avg")
            self.v = _moments(optimizer, model, layout, "exp_avg_sq").clamp_min(0)
            self.root_v = (self.v / self.c2).sqrt()
            self.p = 1.0 / (self.root_v + self.eps)

    def update(self, count: torch.Tensor) -> torch.Tensor:
        """u(m', v', n) for step counts ``count``."""
        live = self.active > 0  # neutral coordinates have β = 1: keep them out of 0/0
        c1 = torch.where(live, 1.0 - self.beta1 ** count, torch.ones_like(count))
        c2 = torch.where(live, 1.0 - self.beta2 ** count, torch.ones_like(count))
        return self.active * (self.eta / c1) * self.m / ((self.v / c2).sqrt() + self.eps)


def _step(f: _Factual, tangent: Tangent, hd: torch.Tensor, shift: bool) -> None:
    if f.kind == "sgd":
        vectors = StepVectors(f.kind, f.reset, f.nu, f.eta, f.lam_c, f.lam_d, f.mu, f.c, f.na,
                              f.nm, f.beta1, f.c1, f.active)
        tangent.d, tangent.dm = forward_step(vectors, tangent.d, tangent.dm, lambda _v: hd)
        tangent.dv = torch.zeros_like(tangent.dv)
        return
    if f.reset:
        tangent.dm, tangent.dv = torch.zeros_like(tangent.dm), torch.zeros_like(tangent.dv)
    a = f.active * (f.nu * hd + f.lam_c * tangent.d)
    tangent.dm = f.beta1 * tangent.dm + (1.0 - f.beta1) * a
    tangent.dv = f.beta2 * tangent.dv + 2.0 * (1.0 - f.beta2) * f.g * a
    safe_root = torch.where(f.root_v > 0, f.root_v, torch.ones_like(f.root_v))
    dv_term = torch.where(f.root_v > 0, f.m * f.p ** 2 * tangent.dv / (2.0 * f.c2 * safe_root),
                          torch.zeros_like(f.m))
    du = (f.eta / f.c1) * (f.p * tangent.dm - dv_term)
    tangent.d = (1.0 - f.eta * f.lam_d) * tangent.d - du
    if shift and tangent.chained:
        shifted = torch.clamp(f.count - tangent.removed_steps, min=1.0)
        tangent.d = tangent.d - f.active * (f.update(f.count) - f.update(shifted))
