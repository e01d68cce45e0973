"""Sketched Gauss–Newton curvature: the per-step factors of ``aa-ggn`` with random projection.

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

Each h is projected to a few coordinates with a count sketch R (each coordinate of a parameter
tensor goes to one of at most ``dim`` buckets of that tensor, with a random sign): R x costs
O(P), E[(Rx)ᵀ(Ry)] = xᵀy, and a tensor with no more than ``dim`` entries is only permuted
(exactly). The blocks follow parameter tensors, so every per-group optimizer scalar (learning
rate, momentum, weight decay, frozen) acts on a projected vector as on the full one.

The recorder can log the projected factors during training (``SketchSpec``); ``aa-ggn`` then
propagates the stage displacements in d dimensions, O(m·d) per step and stage, without
touching the model (auditor.estimators.projected).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.func import functional_call, vjp, vmap

from auditor.errors import EstimatorError
from auditor.estimators.curvature import (
    LossModule,
    loss_at_outputs,
    model_output,
    prefixed,
    seeded,
)
from auditor.estimators.layout import ParamLayout, load_flat, momentum_change
from auditor.lineage.replay import seed_step

Samples = int | Literal["exact"]


@dataclass(frozen=True)
class SketchSpec:
    """How curvature factors are sketched: buckets per parameter tensor, samples per step, seed."""

    dim: int = 1024
    samples: Samples = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise EstimatorError(f"projection must be a positive number of coordinates per "
                                 f"parameter tensor, not {self.dim!r}")
        if self.samples != "exact" and (isinstance(self.samples, bool)
                                        or not isinstance(self.samples, int) or self.samples < 1):
            raise EstimatorError(f"samples must be a positive integer or 'exact', "
                                 f"not {self.samples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise EstimatorError(f"sketch_seed must be a non-negative integer, not {self.seed!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"dim": self.dim, "samples": self.samples, "seed": self.seed}


@dataclass(frozen=True)
class CountSketch:
    """R: P → D, block-diagonal over parameter tensors; R x = Σ_j sign_j x_j e_{bucket_j}."""

    bucket: torch.Tensor  # (P,) long, in [0, D)
    sign: torch.Tensor  # (P,) float64, ±1
    width: int  # D
    source: torch.Tensor  # (D,) long: one parameter coordinate of each bucket (same tensor)
    sizes: tuple[int, ...]  # entries of each parameter tensor
    slots: tuple[int, ...]  # buckets of each parameter tensor (min(dim, size))
    _cache: dict = field(default_factory=dict, compare=False, repr=False)  # by dtype, device

    @classmethod
    def build(cls, layout: ParamLayout, dim: int, seed: int) -> CountSketch:
        gen = torch.Generator().manual_seed(int(seed))
        buckets, sources, start, width = [], [], 0, 0
        for size in layout.sizes:
            slots = min(dim, size)
            # a random permutation folded onto ``slots`` buckets: a bijection when size <= dim
            local = torch.randperm(size, generator=gen) % slots
            buckets.append(local + width)
            first = torch.full((slots,), -1, dtype=torch.long)
            first[local] = torch.arange(size) + start
            sources.append(first)
            start += size
            width += slots
        sign = torch.randint(0, 2, (layout.total,), generator=gen).to(torch.float64) * 2 - 1
        bucket = torch.cat(buckets) if buckets else torch.zeros(0, dtype=torch.long)
        source = torch.cat(sources) if sources else torch.zeros(0, dtype=torch.long)
        return cls(bucket, sign, width, source, tuple(layout.sizes),
                   tuple(min(dim, n) for n in layout.sizes))

    def project_blocks(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        """R x for x given per parameter tensor (a list of (m, size) blocks in one dtype and
        device): each block fills its own buckets, so the (m, P) matrix is never formed.
        Returns float64 on the CPU."""
        if not blocks:
            return torch.zeros(0, self.width, dtype=torch.float64)
        local, signs = self._per_tensor(blocks[0])
        parts = [torch.zeros(block.shape[0], slots, dtype=block.dtype, device=block.device)
                 .index_add_(1, index, block * sign)
                 for block, slots, index, sign in zip(blocks, self.slots, local, signs)]
        return torch.cat(parts, dim=1).to("cpu", torch.float64)

    def _per_tensor(self, like: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each tensor's buckets (counted from its first) and signs, on ``like``'s device and
        in its dtype (made once)."""
        key = (like.dtype, like.device)
        if key not in self._cache:
            local, signs, start, offset = [], [], 0, 0
            for size, slots in zip(self.sizes, self.slots):
                local.append((self.bucket[start:start + size] - offset).to(like.device))
                signs.append(self.sign[start:start + size].to(like.device, like.dtype))
                start, offset = start + size, offset + slots
            self._cache[key] = (local, signs)
        return self._cache[key]

    def lift(self, sketched: torch.Tensor) -> torch.Tensor:
        """Rᵀ y for y of shape (..., D): each coordinate reads its bucket."""
        return sketched[..., self.bucket] * self.sign

    def coordinate_index(self, per_coordinate: torch.Tensor) -> torch.Tensor:
        """A per-parameter-coordinate table (e.g. optimizer group) read per bucket."""
        return per_coordinate[self.source]


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


class SketchLog:
    """The recorder's opt-in log of sketched factors, one row per optimizer step of the
    current stage. Made once per recorder (layout, count sketch and loss wrapper are built
    once); ``start_stage`` begins a stage's rows and adds the (D_k, M_k) of the stage before it.

    ``batch`` computes the factors at θ_t before the training loop's own forward pass and
    re-seeds torch afterwards, so the loop's dropout masks are untouched; a batch whose step
    never came (a GradScaler skipped it) is dropped, as in the step log.
    """

    def __init__(self, spec: SketchSpec, task: Any, model: torch.nn.Module):
        self.spec, self.task, self.model = spec, task, model
        self.layout = ParamLayout.of(model)
        first = next(iter(model.parameters()), None)
        self.dtype = first.dtype if first is not None else torch.float64
        self.device = first.device if first is not None else torch.device("cpu")
        self.sketch = CountSketch.build(self.layout, spec.dim, spec.seed)
        self.module = LossModule(model, task, "mean")
        self.pairs: list[torch.Tensor] = []  # (2, P) per finished stage, model dtype
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] | None = []
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def start_stage(self, finished: list[Any], carried: bool, root: Any) -> None:
        """A new stage after ``finished`` (its convention ``carried`` decides M_k of the
        last one)."""
        del self.pairs[len(finished) - 1:]  # a stage that raised was not recorded
        pair = displacement_pair(finished[-1], carried, root, self.layout)
        self.pairs.append(pair.to(self.device, self.dtype))
        self.stacked = torch.stack(self.pairs)  # (K', 2, P), once per stage
        self.rows, self.pending = [], None

    def batch(self, stage_id: str, ids: list[int], seed: int, global_step: int) -> None:
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        factors = ggn_factors(self.module, params, self.task.batch(stage_id, ids), seed,
                              self.layout, self.spec.samples,
                              step_generator(self.spec, global_step))
        self.pending = (self.sketch.project_blocks(factors).to(self.dtype),
                        tensor_dots(factors, self.stacked, self.layout))
        seed_step(seed)

    def step_done(self) -> None:
        if self.rows and self.pending is not None and \
                self.pending[0].shape != self.rows[0][0].shape:
            raise EstimatorError(
                "samples='exact' logs one factor per output of the batch, so it needs the "
                "same batch size at every step of a stage; use a number of samples")
        if self.rows is not None and self.pending is not None:
            self.rows.append(self.pending)
        else:
            self.rows = None  # a step without a logged batch: no sketch for this stage
        self.pending = None

    def tensors(self) -> dict[str, torch.Tensor] | None:
        if not self.rows:
            return None
        return {"factors": torch.stack([f for f, _ in self.rows]),
                "dots": torch.stack([d for _, d in self.rows])}


def displacement_pair(stage: Any, carried: bool, root: Any, layout: ParamLayout) -> torch.Tensor:
    """(2, P): D_k and M_k of a finished stage (M_k = 0 unless the next stage carries)."""
    change = load_flat(layout, stage.theta_end, root) - load_flat(layout, stage.theta_start, root)
    return torch.stack([change, momentum_change(stage, carried, root, layout)])
