"""What to audit, as plain data the estimators receive: the user's training task.

A lineage names its task as ``module:function``; the function returns a ``TrainingTask``.
The estimators rebuild the architecture with ``build_model()``, take weights from checkpoints,
fetch logged batches with ``batch(ids)`` and evaluate ``loss``. Nothing here imports the store,
Ray or the report.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from auditor.errors import InputError


@runtime_checkable
class TrainingTask(Protocol):
    def build_model(self) -> torch.nn.Module:
        """A fresh model of the audited architecture (weights are loaded afterwards)."""

    def batch(self, stage_id: str, ids: Sequence[int]) -> Any:
        """The training batch with these example ids, as logged for ``stage_id``."""

    def loss(self, model: torch.nn.Module, batch: Any, reduction: str = "mean") -> torch.Tensor:
        """Training loss of ``model`` on ``batch``; ``reduction="none"`` gives per-example losses."""


def load_entry_point(spec: str) -> Callable[..., Any]:
    """Resolve ``module:function`` to the callable, with a clear error when it does not exist."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"entry point {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import {module_name!r} for entry point {spec!r}: {exc}") from exc
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InputError(f"{module_name!r} has no attribute {attr!r} (entry point {spec!r})")
    return target


def load_task(spec: str) -> TrainingTask:
    task = load_entry_point(spec)()
    if not isinstance(task, TrainingTask):
        raise InputError(f"{spec!r} did not return a TrainingTask (build_model, batch, loss)")
    return task
