"""A tiny real training task for tests: an MLP with dropout on generated data."""

from __future__ import annotations

import torch
from torch import nn


class TinyTask:
    """Regression-free classification on fixed random data; batches are rows of ``x``."""

    def __init__(self, n: int = 64, d: int = 6, classes: int = 3, dropout: float = 0.1,
                 seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=gen)
        self.y = torch.randint(0, classes, (n,), generator=gen)
        self.d, self.classes, self.dropout = d, classes, dropout

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.d, 8), nn.Tanh(), nn.Dropout(self.dropout),
                             nn.Linear(8, self.classes))

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        return self.x[index], self.y[index]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def tiny_task() -> TinyTask:
    return TinyTask()
