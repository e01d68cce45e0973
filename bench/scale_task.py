"""The model of bench/scale.py: an MLP of ~330k parameters, three behaviours on 2 048 probes.

Importable by Ray workers (bench/scale.py puts this folder on PYTHONPATH).
"""

from __future__ import annotations

import torch
from torch import nn

D, HIDDEN, CLASSES, POOL, PROBES = 128, 512, 10, 4096, 2048


class ScaleTask:
    def __init__(self, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(POOL, D, generator=gen)
        self.y = torch.randint(0, CLASSES, (POOL,), generator=gen)

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(D, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                             nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        return self.x[index], self.y[index]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def task() -> ScaleTask:
    return ScaleTask()


def behaviours():
    from auditor.behaviours.library import group_gap, harmful_output_rate, probe_loss

    data = ScaleTask(seed=1)
    half = PROBES // 2
    probes = (data.x[:PROBES], data.y[:PROBES])
    return [probe_loss("probe-loss", *probes),
            harmful_output_rate("class0-rate", data.x[:PROBES], 0),
            group_gap("group-gap", (data.x[:half], data.y[:half]),
                      (data.x[half:PROBES], data.y[half:PROBES]))]
