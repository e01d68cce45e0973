"""The task's training loss as a module, and its split into model outputs and loss of outputs.

Shared by the recorder's factor sketch and the estimators' curvature products. Every forward pass
re-seeds torch first (``seeded``) so dropout masks are the factual ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from auditor.errors import EstimatorError, InputError
from auditor.lineage.replay import seed_step
from auditor.outputs import task_logits
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
    """The output of ``module.inner`` during ``run()`` (which must call it exactly once): a
    tensor, or the logits of a ``ModelOutput``, dict or tuple (``auditor.outputs``; a task's own
    ``logits(output)`` when it defines one). The output's type is kept so that
    ``loss_at_outputs`` can hand the task's loss an output of the same kind."""
    seen: list[Any] = []
    handle = module.inner.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        run()
    finally:
        handle.remove()
    if len(seen) != 1:
        raise EstimatorError(
            f"Gauss–Newton curvature needs the task's loss to call the model once (it called "
            f"it {len(seen)} times); use curvature='fisher'")
    out = seen[0]
    if torch.is_tensor(out):
        module.output_kind = None
        return out
    module.output_kind = type(out)
    try:
        return task_logits(module.task)(out)
    except InputError as exc:
        raise EstimatorError(f"Gauss–Newton curvature: {exc}") from None


def _as_output(kind: type | None, logits: torch.Tensor) -> Any:
    """An output of the model's kind that holds ``logits`` (its other entries left empty)."""
    if kind is None:
        return logits
    if issubclass(kind, tuple | list):
        return (logits,)
    if kind is dict:
        return {"logits": logits}
    return kind(logits=logits)  # a ModelOutput (a dataclass over an ordered dict)


def loss_at_outputs(module: LossModule, batch: Any, out: torch.Tensor) -> torch.Tensor:
    """The task's loss when the model returns ``out`` (the model itself is not run). For a model
    that returns a ``ModelOutput``, dict or tuple, the task's loss must be computed from the
    logits alone (not from a ``loss`` the model computes)."""
    answer = _as_output(getattr(module, "output_kind", None), out)
    module.inner.forward = lambda *args, **kwargs: answer
    try:
        return module(batch)
    except (KeyError, TypeError, AttributeError) as exc:
        raise EstimatorError(
            "Gauss–Newton curvature: the task's loss must be computed from the model's logits "
            f"({type(exc).__name__}: {exc}); use curvature='fisher'") from None
    finally:
        del module.inner.forward
