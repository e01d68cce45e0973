"""Curvature-vector products of one training step's loss, with ``torch.func``.

``hessian_operator``: exact H_t v by forward-over-reverse (jvp of grad).
``fisher_operator``: empirical Fisher G_t v = |B|⁻¹ Jᵀ(J v), J the per-example loss Jacobian
(one jvp and one vjp; positive semi-definite, so the propagation contracts).
Both re-seed torch before every forward pass so dropout masks are the factual ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vjp

from auditor.estimators.layout import ParamLayout
from auditor.lineage.replay import seed_step
from auditor.task import TrainingTask

Operator = Callable[[torch.Tensor], torch.Tensor]


class LossModule(nn.Module):
    """``forward(batch)`` = the task's training loss of the wrapped model."""

    def __init__(self, model: nn.Module, task: TrainingTask, reduction: str = "mean"):
        super().__init__()
        self.inner = model
        self.task = task
        self.reduction = reduction

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(self.inner, batch, reduction=self.reduction)


def _prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"inner.{n}": t for n, t in tensors.items()}


def _unprefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n[len("inner."):]: t for n, t in tensors.items()}


def _seeded(seed: int | None) -> None:
    if seed is not None:
        seed_step(seed)


def hessian_operator(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                     seed: int | None, layout: ParamLayout) -> Operator:
    primals = _prefixed(params)

    def loss(p):
        return functional_call(module, p, (batch,))

    grad_fn = grad(loss)

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = _prefixed(layout.unflatten(vector, like=params))
        _seeded(seed)
        _, hv = jvp(grad_fn, (primals,), (tangent,))
        return layout.flatten(_unprefixed(hv))

    return apply


def fisher_operator(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                    seed: int | None, layout: ParamLayout) -> Operator:
    """Empirical Fisher of the per-example losses (``module.reduction`` must be "none")."""
    primals = _prefixed(params)

    def losses(p):
        return functional_call(module, p, (batch,))

    _seeded(seed)
    values, pullback = vjp(losses, primals)
    count = values.numel()

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = _prefixed(layout.unflatten(vector, like=params))
        _seeded(seed)
        _, jv = jvp(losses, (primals,), (tangent,))
        (back,) = pullback(jv / count)
        return layout.flatten(_unprefixed(back))

    return apply
