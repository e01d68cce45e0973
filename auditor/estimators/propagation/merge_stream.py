"""``aa``'s streamed propagation through a recorded adapter merge
(docs/maths.md#merged-adapters): a merged weight's chunk needs the factors' tangents, walked
(whole: they are r × in and out × r) up to the merge stage and cached for the weight's chunks."""

from __future__ import annotations

import torch

from auditor.lineage.merges import merge_difference
from auditor.lineage.sketching.union import names_back


def merge_into(streamed, j: int, name: str | None, live: list[list], rows) -> None:
    """Stage j's recorded merge into tensor ``name`` on every live tangent (in place):
    δ += s·(δB·A + (B − δB)·δA), the factors' tangents walked up to stage j
    (docs/maths.md#merged-adapters)."""
    change = streamed.version.stages[j].changes
    merge = None if change is None or name is None else next(
        (m for m in change.merges if m.weight == name), None)
    if merge is None:
        return
    if (j, name) not in streamed.factors:
        end = streamed.read(streamed.version.stages[j - 1].theta_end)
        factors = []
        for factor in (merge.a, merge.b):
            shape = torch.Size(end.shape(factor))
            factors.append(end.get(factor).to(streamed.device, streamed.dtype))
            names = names_back(streamed.version, j - 1, factor)
            factors.append(streamed.walk(names, shape, None, stop=j))
        streamed.factors[j, name] = factors
    a, da, b, db = streamed.factors[j, name]
    for item in live:
        diff = merge_difference(merge, a, b, da.get(item[0]), db.get(item[0]), rows)
        if diff is not None:
            item[1] = item[1] + diff.reshape(item[1].shape)

