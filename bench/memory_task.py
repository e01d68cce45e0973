"""The models of bench/memory.py: MLPs of four d × d layers, P ≈ 4·d² parameters.

``width`` picks P: 512 → 1.05M, 1024 → 4.2M, 2048 → 16.8M, 4096 → 67M (float32).
"""

from __future__ import annotations

import torch
from torch import nn

POOL, BATCH, PROBES = 256, 8, 16


class MemoryTask:
    def __init__(self, width: int, seed: int = 0):
        self.width = width
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(POOL, width, generator=gen)
        self.y = torch.randint(0, width, (POOL,), generator=gen)

    def build_model(self) -> nn.Module:
        d = self.width
        return nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, d, bias=False),
                             nn.ReLU(), nn.Linear(d, d, bias=False), nn.ReLU(),
                             nn.Linear(d, d))

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        return self.x[index], self.y[index]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def behaviour(task: MemoryTask):
    from auditor.behaviours.library import probe_loss

    return probe_loss("probe-loss", task.x[:PROBES], task.y[:PROBES])
