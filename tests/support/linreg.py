"""Linear regression trained in four recorded stages (float64): the exactness fixture.

With squared loss the step map is affine, so the curvature-aware estimator is exact for a
behaviour that is linear in θ (f(θ) = xᵀθ).
"""

from __future__ import annotations

import torch
from torch import nn

from auditor import Recorder
from auditor.behaviours.base import Behaviour

STAGES = [("pretrain", 9, 0.05), ("vendor", 6, 0.08), ("clean", 7, 0.04), ("polish", 5, 0.02)]


class LinRegTask:
    def __init__(self, n: int = 48, d: int = 5, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        w = torch.randn(d, 1, generator=gen, dtype=torch.float64)
        self.y = self.x @ w + 0.3 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        self.d = d

    def build_model(self) -> nn.Module:
        return nn.Linear(self.d, 1).double()

    def batch(self, stage_id, ids):
        index = torch.as_tensor(list(ids))
        shift = 0.5 if stage_id == "vendor" else 0.0  # the vendor stage sees shifted targets
        return self.x[index], self.y[index] + shift

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        errors = (model(x) - y).squeeze(-1) ** 2
        return errors.mean() if reduction == "mean" else errors


def linreg_task() -> LinRegTask:
    return LinRegTask()


def linear_behaviours(task: LinRegTask, count: int = 6) -> list[Behaviour]:
    gen = torch.Generator().manual_seed(5)
    probes = torch.randn(count, task.d, generator=gen, dtype=torch.float64)
    return [Behaviour(name=f"x{i}", direction="harm",
                      surrogate=lambda model, x=probes[i:i + 1]: model(x).sum())
            for i in range(count)]


def _optimizer(kind, model, lr, weight_decay, momentum, nesterov, split=False):
    if split:  # two groups: the bias without weight decay
        groups = [{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}]
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov)
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov)


def record_linreg(tmp_path, convention: str, *, weight_decay: float = 0.01,
                  momentum: float = 0.9, nesterov: bool = False, optimizer_kind: str = "sgd",
                  sketch=None, split_groups: bool = False):
    task = LinRegTask()
    torch.manual_seed(0)
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="linreg", version=convention, seed=3,
                   task="tests.support.linreg:linreg_task" if sketch else None, sketch=sketch)
    gen = torch.Generator().manual_seed(1)
    optimizer = None
    for index, (stage_id, steps, lr) in enumerate(STAGES):
        if optimizer is None or convention == "reset":
            optimizer = _optimizer(optimizer_kind, model, lr, weight_decay, momentum, nesterov,
                                   split_groups)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with rec.stage(stage_id, kind="fine-tune" if index else "pretrain", optimizer=optimizer):
            for _t in range(steps):
                ids = torch.randperm(len(task.y), generator=gen)[:8]
                rec.batch(ids)
                loss = task.loss(model, task.batch(stage_id, ids))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                for group in optimizer.param_groups:
                    group["lr"] *= 0.93  # a decaying schedule inside the stage
    return task, rec.lineage
