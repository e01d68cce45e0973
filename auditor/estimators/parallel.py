"""A version's tensors spread over several workers (docs/scaling.md#several-workers).

The streamed estimators compute each tensor (or chunk of rows) alone from the checkpoints, so
the tensors of one version can be split into groups computed apart and put back in their
order. ``groups`` cuts the tensor list into ``workers`` contiguous groups of about equal size;
a ``ChunkMap`` runs one call per group and returns the results in the groups' order. The
estimators import no scheduler: ``serial_map`` runs the groups here, one after another, and the
execution room supplies a Ray map (``auditor.execution.chunks.ray_chunk_map``). Results are
joined in the groups' order, so every chunk is the one a single worker computes and scoring
sees the same chunks in the same order: the effects are the same bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

ChunkMap = Callable[[Callable[[Any], Any], list], list]


def serial_map(fn: Callable[[Any], Any], items: list) -> list:
    return [fn(item) for item in items]


def groups(sizes: Sequence[int], workers: int) -> list[range]:
    """Contiguous ranges of tensor indices, at most ``workers`` of them, each about the total
    size / ``workers`` (a tensor is never split between groups)."""
    total = sum(sizes)
    target = total / max(1, workers)
    found, start, filled = [], 0, 0
    for index, size in enumerate(sizes):
        filled += size
        if filled >= target * (len(found) + 1) and len(found) < workers - 1:
            found.append(range(start, index + 1))
            start = index + 1
    if start < len(sizes):
        found.append(range(start, len(sizes)))
    return found
