"""The count sketch R: P → D, block-diagonal over parameter tensors (docs/maths.md#count-sketch).

Each coordinate of a parameter tensor goes to one of at most ``dim`` buckets of that tensor,
with a random sign: R x costs O(P), E[(Rx)ᵀ(Ry)] = xᵀy, and a tensor with no more than ``dim``
entries is only permuted (exactly). The blocks follow parameter tensors, so every per-group
optimizer scalar (learning rate, momentum, weight decay, frozen) acts on a projected vector as
on the full one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from auditor.lineage.sketching.layout import ParamLayout


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
