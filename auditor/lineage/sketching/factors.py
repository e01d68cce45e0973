"""Sampled Gauss–Newton factors of one training step (docs/maths.md#sketched-gauss-newton).

The generalised Gauss–Newton of a step's loss is G = Jᵀ H J (J: the Jacobian of the model's
outputs on the batch, H: the loss's Hessian in the outputs, block-diagonal over examples). With
L_z L_zᵀ = H_z per example and a Rademacher ξ, the vector h = Jᵀ (L ξ) — one backward pass of
the outputs — has E[h hᵀ] = G. ``samples`` such vectors per step give an unbiased rank-m
estimate of G; ``samples="exact"`` takes ξ over a basis of the output space (m = B·C) and
gives G exactly.

What the sketch would estimate worst — h·δ for the large displacement D_k itself — is logged
exactly: per step, the inner products of every h with every earlier stage's (D_k, M_k), per
parameter tensor (``tensor_dots``). Only the curvature correction, which lives in the span of
the gradients, goes through the sketch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call, vjp, vmap

from auditor.lineage.sketching.layout import ParamLayout
from auditor.lineage.sketching.loss import (
    LossModule,
    loss_at_outputs,
    model_output,
    prefixed,
    seeded,
)
from auditor.lineage.sketching.spec import Samples, SketchSpec


def step_generator(spec: SketchSpec, global_step: int) -> torch.Generator:
    """The Rademacher draws of one step: the same in the recorder and in any later walk."""
    return torch.Generator().manual_seed((spec.seed * 1_000_003 + global_step) % (2**63))


def ggn_factors(module: LossModule, params: dict[str, torch.Tensor], batch: Any,
                seed: int | None, layout: ParamLayout, samples: Samples,
                generator: torch.Generator) -> list[torch.Tensor]:
    """m vectors h_j with (1/m) Σ_j h_j h_jᵀ = G (exact) or E[·] = G (sampled), as one
    (m, size) block per parameter tensor, in the model's dtype and device."""
    primals = prefixed(params)

    def outputs(p):
        seeded(seed)
        return model_output(module, lambda: functional_call(module, p, (batch,)))

    out, pullback = vjp(outputs, primals)
    out = out.detach()
    roots = _output_hessian_roots(module, batch, out)  # (B, C, C): L_z
    count, width = roots.shape[0], roots.shape[1]
    if samples == "exact":
        # ξ over the basis of the (B·C)-dimensional output space, scaled so that the mean of
        # the m = B·C outer products is G
        eye = torch.eye(count * width, dtype=roots.dtype, device=roots.device)
        draws = eye.reshape(-1, count, width) * (count * width) ** 0.5
    else:  # drawn on the CPU generator: the same signs whatever the device
        draws = (torch.randint(0, 2, (samples, count, width), generator=generator)
                 .to(roots.device, roots.dtype) * 2 - 1)
    cotangents = torch.einsum("bij,mbj->mbi", roots, draws).reshape(-1, *out.shape)
    (back,) = vmap(pullback)(cotangents)  # one batched backward pass for all m vectors
    count = len(cotangents)
    return [back[f"inner.{name}"].reshape(count, -1) if f"inner.{name}" in back
            else torch.zeros(count, size, dtype=out.dtype, device=out.device)
            for name, size in zip(layout.names, layout.sizes)]


def _output_hessian_roots(module: LossModule, batch: Any, out: torch.Tensor) -> torch.Tensor:
    """L_z with L_z L_zᵀ = ∂²loss/∂out_z² for every example row z (PSD part, by eigh)."""
    rows = out.reshape(out.shape[0], -1)
    width = rows.shape[1]

    def loss_of(flat):
        return loss_at_outputs(module, batch, flat.reshape(out.shape))

    leaf = rows.detach().requires_grad_(True)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(loss_of(leaf), leaf, create_graph=True)
        # the loss is a sum over rows, so H is block-diagonal: C tangents (one per output
        # column, in every row at once) give every row's C × C block, in one batched backward
        tangents = torch.eye(width, dtype=rows.dtype, device=rows.device)[:, None, :]
        tangents = tangents.expand(width, *rows.shape)
        if not gradient.requires_grad:  # a loss linear in the outputs
            return torch.zeros(rows.shape[0], width, width, dtype=rows.dtype)
        (columns,) = torch.autograd.grad(gradient, leaf, tangents, is_grads_batched=True)
    hessians = columns.permute(1, 2, 0)  # (B, C, C): [b, i, c] = H_b[i, c]
    hessians = 0.5 * (hessians + hessians.transpose(1, 2))
    values, vectors = torch.linalg.eigh(hessians)
    return vectors * values.clamp_min(0).sqrt().unsqueeze(1)


def tensor_dots(blocks: list[torch.Tensor], pairs: torch.Tensor,
                layout: ParamLayout) -> torch.Tensor:
    """(m, K', tensors, 2) float64: h_j · D_k and h_j · M_k restricted to each parameter
    tensor, for the factors' blocks and pairs (K', 2, P) of the stages before the step (pairs
    in the blocks' dtype and device: cast once, not every step)."""
    columns = [torch.einsum("mp,kip->mki", block, pairs[:, :, span])
               for block, span in zip(blocks, layout.offsets().values())]
    if not columns:
        return torch.zeros(0, pairs.shape[0], 0, 2, dtype=torch.float64)
    return torch.stack(columns, dim=2).to("cpu", torch.float64)
