"""What a model's forward returns, reduced to the tensor the audit reads: its logits.

Models return a tensor (plain torch), a ``ModelOutput`` (Hugging Face transformers), a dict, or a
tuple. ``logits_of`` takes, in this order: the tensor itself; the ``logits`` entry of a mapping
or ``ModelOutput``; the first element of a tuple or list (the transformers convention with
``return_dict=False``). Anything else is an ``InputError`` that names the type.

A task or a behaviour that needs another entry (a value head, ``start_logits``) passes its own
``logits`` function: a task by defining ``logits(output) -> Tensor``, a library behaviour by its
``logits=`` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from auditor.errors import InputError

LogitsFn = Callable[[Any], torch.Tensor]


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a forward pass's ``output`` (see the module docstring for the rule)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):  # ModelOutput is an OrderedDict
        value = output.get("logits")
        if isinstance(value, torch.Tensor):
            return value
        raise InputError(f"the model returned a {type(output).__name__} without a 'logits' "
                         f"tensor (keys: {list(output)[:6]}); pass logits= to pick one")
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InputError(f"cannot find logits in a model output of type {type(output).__name__}; "
                     "pass logits= to say where they are")


def task_logits(task: Any) -> LogitsFn:
    """The task's own ``logits(output)`` when it defines one, else ``logits_of``."""
    custom = getattr(task, "logits", None)
    return custom if callable(custom) else logits_of


def forward_logits(model: torch.nn.Module, inputs: Any, logits: LogitsFn | None = None
                   ) -> torch.Tensor:
    """``model``'s logits on ``inputs`` (a mapping is passed as keyword arguments)."""
    output = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return (logits or logits_of)(output)


def unique_parameters(model: torch.nn.Module) -> int:
    """Number of distinct trainable scalars (a tied weight counts once)."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():  # parameters() already yields a shared tensor once
        if param.requires_grad and id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total
