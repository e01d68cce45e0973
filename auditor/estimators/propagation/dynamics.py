"""The linearised step map of the logged optimizers, forward and adjoint (docs/maths.md#step-maps).

State of a tangent: (δ, δm) — parameter and first-moment differences between the factual run and
the run without a stage. One step, with a = ν·Hδ + λ_c·δ (masked to the parameters the step
updates):

* SGD (PyTorch semantics):  δm' = μ̃ δm + c·a;  δ' = δ − η (n_a·a + n_m·δm')
  with μ̃ = 0, c = 1 on a fresh buffer; c = 1 − dampening; n_a = 1, n_m = μ for Nesterov, else
  n_a = 0, n_m = 1.
* Adam/AdamW, fixed preconditioner p_t:  δm' = β₁δm + (1−β₁)a;
  δ' = (1 − ηλ_d)δ − (η/c1)·p ⊙ δm'.

Frozen or unoptimized coordinates get the neutral values (η = 0, μ̃ = 1, c = 0, β₁ = 1), so the
same formulas leave them untouched. Curvature enters only through ``curv(v) = H v`` (exact
Hessian, Gauss–Newton, or zero for AA-H0).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from auditor.lineage.models import Stage

Curvature = Callable[[torch.Tensor], torch.Tensor] | None

_NEUTRAL = {"eta": 0.0, "lam_c": 0.0, "lam_d": 0.0, "mu": 1.0, "c": 0.0, "na": 0.0,
            "nm": 0.0, "beta1": 1.0, "c1": 1.0, "c2": 1.0, "eps": 1.0, "active": 0.0,
            "beta2": 1.0, "count": 1.0}


@dataclass
class StageCoefficients:
    """Per-step, per-group scalars of one stage (rows: steps; columns: groups + neutral)."""

    kind: str
    reset: bool
    table: dict[str, torch.Tensor]  # field -> (steps, groups + 1) float64
    clip: torch.Tensor  # (steps,) ν_t
    group_index: torch.Tensor  # (P,) long

    @property
    def steps(self) -> int:
        return int(self.clip.numel())

    def vector(self, field: str, t: int) -> torch.Tensor:
        return self.table[field][t][self.group_index]

    def scalar(self, field: str, t: int, group: int) -> float:
        return float(self.table[field][t, group])


def stage_coefficients(stage: Stage, group_index: torch.Tensor,
                       fresh_buffer: bool) -> StageCoefficients:
    """``fresh_buffer``: the stage's first step finds no momentum buffer (SGD initialises it)."""
    log, steps = stage.optimizer, stage.optimizer.steps
    n, groups = steps.steps, len(log.groups)
    rows = _fields(log.kind, log.nesterov, steps, n, groups, fresh_buffer)
    table = {}
    for key, neutral in _NEUTRAL.items():
        column = np.full((n, groups + 1), neutral, dtype=np.float64)
        if key in rows:
            column[:, :groups] = rows[key]
        table[key] = torch.from_numpy(column)
    clip = torch.from_numpy(steps.clip_factors())
    return StageCoefficients(log.kind, stage.convention == "reset", table, clip, group_index)


def _column(values, n: int, groups: int, default: float = 0.0) -> np.ndarray:
    if values is None:
        return np.full((n, groups), default, dtype=np.float64)
    # fromiter over the flattened rows: four times faster than asarray on nested lists
    flat = np.fromiter(itertools.chain.from_iterable(values), np.float64, count=n * groups)
    return flat.reshape(n, groups)


def _fields(kind: str, nesterov: bool, steps, n: int, groups: int,
            first: bool) -> dict[str, np.ndarray]:
    rows = {"eta": _column(steps.lr, n, groups), "active": np.ones((n, groups))}
    wd = _column(steps.weight_decay, n, groups)
    if kind == "sgd":
        mu = _column(steps.momentum, n, groups)
        damp = _column(steps.dampening, n, groups)
        fresh = (mu == 0)
        if first:
            fresh[0] = True
        rows["lam_c"] = wd
        rows["mu"] = np.where(fresh, 0.0, mu)
        rows["c"] = np.where(fresh, 1.0, 1.0 - damp)
        rows["na"] = np.where(mu == 0, 1.0, 1.0 if nesterov else 0.0)
        rows["nm"] = np.where(mu == 0, 0.0, mu if nesterov else 1.0)
        return rows
    b1, b2 = _column(steps.beta1, n, groups), _column(steps.beta2, n, groups)
    count = (_column(steps.adam_step, n, groups) if steps.adam_step
             else np.repeat(np.arange(1, n + 1, dtype=np.float64)[:, None], groups, axis=1))
    rows["lam_c" if kind == "adam" else "lam_d"] = wd
    rows["beta1"], rows["beta2"], rows["count"] = b1, b2, count
    rows["c1"], rows["c2"] = 1.0 - b1 ** count, 1.0 - b2 ** count
    rows["eps"] = _column(steps.eps, n, groups, 1e-8)
    return rows


# -- one step, forward and adjoint ---------------------------------------------------------

@dataclass
class StepVectors:
    """The coefficient vectors of one step (over all P coordinates)."""

    kind: str
    reset_before: bool  # δm ← 0 before this step (first step of a reset stage)
    nu: float
    eta: torch.Tensor
    lam_c: torch.Tensor
    lam_d: torch.Tensor
    mu: torch.Tensor
    c: torch.Tensor
    na: torch.Tensor
    nm: torch.Tensor
    beta1: torch.Tensor
    c1: torch.Tensor
    active: torch.Tensor
    precond: torch.Tensor | None = None  # Adam p_t


def step_vectors(coeffs: StageCoefficients, t: int,
                 precond: torch.Tensor | None = None) -> StepVectors:
    v = {k: coeffs.vector(k, t) for k in ("eta", "lam_c", "lam_d", "mu", "c", "na", "nm",
                                          "beta1", "c1", "active")}
    return StepVectors(coeffs.kind, coeffs.reset and t == 0, float(coeffs.clip[t]),
                       precond=precond, **v)


def forward_step(s: StepVectors, d: torch.Tensor, dm: torch.Tensor,
                 curv: Curvature) -> tuple[torch.Tensor, torch.Tensor]:
    if s.reset_before:
        dm = torch.zeros_like(dm)
    a = s.lam_c * d
    if curv is not None:
        a = a + s.nu * curv(d)
    a = s.active * a
    if s.kind == "sgd":
        dm_next = s.mu * dm + s.c * a
        return d - s.eta * (s.na * a + s.nm * dm_next), dm_next
    dm_next = s.beta1 * dm + (1.0 - s.beta1) * a
    return (1.0 - s.eta * s.lam_d) * d - (s.eta / s.c1) * s.precond * dm_next, dm_next


def adjoint_step(s: StepVectors, u: torch.Tensor, w: torch.Tensor,
                 curv: Curvature) -> tuple[torch.Tensor, torch.Tensor]:
    """The transpose of ``forward_step``: adjoints (u, w) after the step → before it."""
    u_prev, w_prev, _ = adjoint_parts(s, u, w, curv)
    return u_prev, w_prev


def adjoint_parts(s: StepVectors, u: torch.Tensor, w: torch.Tensor, curv: Curvature,
                  input_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``adjoint_step`` plus the adjoint of the step's input a = ν·g + λ_c·θ.

    ``input_only``: treat a as a given input (the factual gradient), not a function of θ — the
    exact data-form decomposition of a stage (docs/maths.md#data-level-attribution).
    """
    if s.kind == "sgd":
        r = w - s.eta * s.nm * u
        a_adj = s.active * (s.c * r - s.eta * s.na * u)
        w_prev = s.mu * r
        u_prev = u
    else:
        r = w - (s.eta / s.c1) * s.precond * u
        a_adj = s.active * (1.0 - s.beta1) * r
        w_prev = s.beta1 * r
        u_prev = (1.0 - s.eta * s.lam_d) * u
    if not input_only:
        u_prev = u_prev + s.lam_c * a_adj
    if curv is not None and not input_only:
        u_prev = u_prev + s.nu * curv(a_adj)
    if s.reset_before:
        w_prev = torch.zeros_like(w_prev)
    return u_prev, w_prev, a_adj


def adam_preconditioner(exp_avg_sq: torch.Tensor, coeffs: StageCoefficients,
                        t: int) -> torch.Tensor:
    """p_t = 1 / (sqrt(v_{t+1} / c2_t) + ε), as torch's Adam computes it."""
    c2 = coeffs.vector("c2", t)
    eps = coeffs.vector("eps", t)
    return 1.0 / (exp_avg_sq.clamp_min(0).sqrt() / c2.sqrt() + eps)
