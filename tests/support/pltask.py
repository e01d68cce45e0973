"""A PyTorch Lightning task for the integration tests: a small MLP with dropout."""

from __future__ import annotations

import torch
from torch import nn

from auditor.integrations.lightning import LightningTask

TASK = "tests.support.pltask:task"
GEN = torch.Generator().manual_seed(0)
X = torch.randn(96, 6, generator=GEN)
Y = torch.randint(0, 3, (96,), generator=GEN)


def module_class():
    """The LightningModule class (lightning is imported when a model is built)."""
    import lightning.pytorch as pl

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.2),
                                     nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=0.05, weight_decay=0.01)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return Classifier


class Examples(torch.utils.data.Dataset):
    def __len__(self):
        return len(X)

    def __getitem__(self, i):
        return X[i], Y[i]


def collate(items):
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


class ClassifierTask(LightningTask):
    def build_model(self):
        return module_class()()

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        return X[index], Y[index]


def task() -> ClassifierTask:
    return ClassifierTask()
