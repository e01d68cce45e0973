"""Where an estimator computes: the ``device`` setting, a generic tensor mover and a task wrapper.

``device`` is ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
It is an estimator setting but not part of its config hash: the numbers agree up to rounding.

On a non-CPU device the estimator wraps the task in ``DeviceTask``: models it builds live on the
device (checkpoints load into them there) and logged batches are moved there. Behaviours are
closures over CPU probe tensors, so every model the task builds also gets a *device-transparent
forward*: inputs are moved to the model's device and the outputs go back to the device the
inputs came from. ``model(cpu_probe)`` answers on CPU; ``model(cuda_batch)`` stays on CUDA.
Behaviours must therefore reach the model through its own ``forward`` (``model(x)``); one that
calls a submodule directly should move its inputs with ``to_device(x, model_device(model))``.
On CPU nothing is wrapped or hooked: ``device="cpu"`` gives the default's numbers bitwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from auditor.errors import EstimatorError
from auditor.task import TrainingTask

DEVICE_SETTINGS = ("auto", "cpu", "cuda", "cuda:N")


def check_device(setting: str) -> str:
    """The setting itself, validated for form (not for availability: planners may lack a GPU)."""
    text = str(setting)
    kind, _, index = text.partition(":")
    if text in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit()):
        return text
    raise EstimatorError(f"device must be one of {', '.join(DEVICE_SETTINGS)}, not {setting!r}")


def resolve_device(setting: str = "auto") -> torch.device:
    """The torch device for ``setting``; a clear EstimatorError when CUDA is asked for but absent."""
    text = check_device(setting)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise EstimatorError(f"device {text!r} asked for, but CUDA is not available here "
                             "(torch.cuda.is_available() is False): use device='cpu' or 'auto'")
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise EstimatorError(f"device {text!r} asked for, but only {torch.cuda.device_count()} "
                             "CUDA device(s) exist")
    return device


def to_device(value: Any, device: torch.device | str) -> Any:
    """``value`` with every tensor inside (tuples, lists, dicts, nested) moved to ``device``."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)((k, to_device(v, device)) for k, v in value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # named tuple
        return type(value)(*(to_device(v, device) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def model_device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _first_tensor_device(value: Any) -> torch.device | None:
    if torch.is_tensor(value):
        return value.device
    items = value.values() if isinstance(value, dict) else value
    if isinstance(value, (list, tuple, dict)):
        for item in items:
            found = _first_tensor_device(item)
            if found is not None:
                return found
    return None


def device_transparent(model: torch.nn.Module) -> torch.nn.Module:
    """Hook ``model`` (in place) so it takes inputs on any device and answers on theirs."""
    origins: list[torch.device | None] = []

    def before(module, args, kwargs):
        origin = _first_tensor_device((args, kwargs))
        target = model_device(module)
        if origin is None or origin == target:
            origins.append(None)
            return None
        origins.append(origin)
        return to_device(args, target), to_device(kwargs, target)

    def after(module, args, kwargs, output):
        origin = origins.pop()
        return output if origin is None else to_device(output, origin)

    model.register_forward_pre_hook(before, with_kwargs=True)
    model.register_forward_hook(after, with_kwargs=True)
    return model


class DeviceTask:
    """``task`` with models built on ``device`` (device-transparent) and batches moved there."""

    def __init__(self, task: TrainingTask, device: torch.device):
        self.task, self.device = task, device

    def build_model(self) -> torch.nn.Module:
        return device_transparent(self.task.build_model().to(self.device))

    def batch(self, stage_id: str, ids: Sequence[int]) -> Any:
        return to_device(self.task.batch(stage_id, ids), self.device)

    def loss(self, model: torch.nn.Module, batch: Any, reduction: str = "mean") -> torch.Tensor:
        return self.task.loss(model, batch, reduction=reduction)

    def __getattr__(self, name: str) -> Any:  # anything else the user's task offers
        if name == "task":
            raise AttributeError(name)
        return getattr(self.task, name)


def task_on(task: TrainingTask, setting: str) -> TrainingTask:
    """``task`` itself on CPU (bitwise the default), else wrapped in ``DeviceTask``."""
    device = resolve_device(setting)
    if device.type == "cpu" or isinstance(task, DeviceTask):
        return task
    return DeviceTask(task, device)
