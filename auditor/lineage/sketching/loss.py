"""The task's training loss as a module, and its split into model outputs and loss of outputs.

Shared by the recorder's factor sketch and the estimators' curvature products. Every forward pass
re-seeds torch first (``seeded``) so dropout masks are the factual ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from auditor.errors import EstimatorError
from auditor.lineage.replay import seed_step
from auditor.task import TrainingTask


class LossModule(nn.Module):
    """``forward(batch)`` = the task's training loss of the wrapped model."""

    def __init__(self, model: nn.Module, task: TrainingTask, reduction: str = "mean"):
        super().__init__()
        self.inner = model
        self.task = task
        self.reduction = reduction

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(self.inner, batch, reduction=self.reduction)


def prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"inner.{n}": t for n, t in tensors.items()}


def unprefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n[len("inner."):]: t for n, t in tensors.items()}


def seeded(seed: int | None) -> None:
    if seed is not None:
        seed_step(seed)


def model_output(module: LossModule, run: Callable[[], Any]) -> torch.Tensor:
    """The output of ``module.inner`` during ``run()`` (which must call it exactly once)."""
    seen: list[torch.Tensor] = []
    handle = module.inner.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        run()
    finally:
        handle.remove()
    if len(seen) != 1 or not torch.is_tensor(seen[0]):
        raise EstimatorError(
            f"Gauss–Newton curvature needs the task's loss to call the model once and get one "
            f"tensor back (it called it {len(seen)} times); use curvature='fisher'")
    return seen[0]


def loss_at_outputs(module: LossModule, batch: Any, out: torch.Tensor) -> torch.Tensor:
    """The task's loss when the model returns ``out`` (the model itself is not run)."""
    module.inner.forward = lambda *args, **kwargs: out
    try:
        return module(batch)
    finally:
        del module.inner.forward
