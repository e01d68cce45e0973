"""Curvature-vector products of one training step's loss, with ``torch.func``.

``hessian_operator``: exact H_t v by double backward; ``hessian_operator_func`` the same by
``torch.func`` forward-over-reverse (jvp of grad).
``gauss_newton_operator``: the generalised Gauss–Newton G_t v = Jᵀ H_out J v, J the Jacobian of
the model's outputs on the batch, H_out the Hessian of the loss in the outputs (one jvp, an
output-space Hessian product and one vjp; positive semi-definite for a convex loss).
``fisher_operator``: empirical Fisher G_t v = |B|⁻¹ Jᵀ(J v), J the per-example loss Jacobian
(one jvp and one vjp; positive semi-definite, so the propagation contracts).
All re-seed torch before every forward pass so dropout masks are the factual ones
(docs/maths.md#curvature).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import functional_call, grad, jvp, vjp

from auditor.lineage.sketching.layout import ParamLayout
from auditor.lineage.sketching.loss import (
    LossModule,
    loss_at_outputs,
    model_output,
    prefixed,
    seeded,
    unprefixed,
)

Operator = Callable[[torch.Tensor], torch.Tensor]


def hessian_operator(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                     seed: int | None, layout: ParamLayout) -> Operator:
    """Exact H v by double backward: one forward and one graph-keeping backward per step, then
    one backward-of-backward per vector (cheaper than ``hessian_operator_func`` for several
    vectors at the same step; the two agree to rounding)."""
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    seeded(seed)
    with torch.enable_grad():
        loss = functional_call(module, prefixed(leaves), (batch,))
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True,
                                    allow_unused=True)
    used = [(name, g) for name, g in zip(leaves, grads) if g is not None and g.requires_grad]

    def apply(vector: torch.Tensor) -> torch.Tensor:
        if not used:
            return torch.zeros_like(vector)
        tangent = layout.unflatten(vector, like=params)
        with torch.enable_grad():
            hv = torch.autograd.grad([g for _, g in used], list(leaves.values()),
                                     grad_outputs=[tangent[name] for name, _ in used],
                                     retain_graph=True, allow_unused=True)
        return layout.flatten({n: h for n, h in zip(leaves, hv) if h is not None})

    return apply


def hessian_operator_func(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                     seed: int | None, layout: ParamLayout) -> Operator:
    primals = prefixed(params)

    def loss(p):
        return functional_call(module, p, (batch,))

    grad_fn = grad(loss)

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = prefixed(layout.unflatten(vector, like=params))
        seeded(seed)
        _, hv = jvp(grad_fn, (primals,), (tangent,))
        return layout.flatten(unprefixed(hv))

    return apply


def fisher_operator(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                    seed: int | None, layout: ParamLayout) -> Operator:
    """Empirical Fisher of the per-example losses (``module.reduction`` must be "none")."""
    primals = prefixed(params)

    def losses(p):
        return functional_call(module, p, (batch,))

    seeded(seed)
    values, pullback = vjp(losses, primals)
    count = values.numel()

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = prefixed(layout.unflatten(vector, like=params))
        seeded(seed)
        _, jv = jvp(losses, (primals,), (tangent,))
        (back,) = pullback(jv / count)
        return layout.flatten(unprefixed(back))

    return apply


def gauss_newton_operator(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                          seed: int | None, layout: ParamLayout) -> Operator:
    """Generalised Gauss–Newton of the task's loss. The split into outputs and loss needs no
    task change: the model's output is read with a forward hook, and the loss of given outputs
    is the task's loss with the model's forward answering them. The task's loss must call the
    model once per batch."""
    primals = prefixed(params)

    def outputs(p):
        seeded(seed)
        return model_output(module, lambda: functional_call(module, p, (batch,)))

    def loss_at(out):
        return loss_at_outputs(module, batch, out)

    out0, pullback = vjp(outputs, primals)
    loss_gradient = grad(loss_at)
    out0 = out0.detach()

    def apply(vector: torch.Tensor) -> torch.Tensor:
        tangent = prefixed(layout.unflatten(vector, like=params))
        _, jv = jvp(outputs, (primals,), (tangent,))
        _, hjv = jvp(loss_gradient, (out0,), (jv,))
        (back,) = pullback(hjv)
        return layout.flatten(unprefixed(back))

    return apply
