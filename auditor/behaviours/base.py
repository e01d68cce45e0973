"""A behaviour: what the audit measures at the final model.

``surrogate(model)`` is a differentiable scalar the estimators differentiate; ``metric(model)`` is
the number people read (a rate, an accuracy gap). ``direction`` says whether more of it is harm
(a stage that raises it gets blame) or benefit (a stage that raises it gets credit).
``metric_name``, ``description``, ``probe_size`` and ``probe_digest`` define the behaviour for
people: the audit stores them with the scores and the report prints them. ``joint(model)``, when given, returns both from one forward pass (surrogate tensor, metric):
scoring needs both, and the forward pass is most of a small behaviour's cost.

Per-example behaviours on one probe batch can share a ``ProbeFamily``: the estimators then
evaluate the whole family in one batched forward pass, and score it with one forward-mode pass
per stage instead of one backward pass per member.

Every measurement is taken in eval mode (dropout off, normalisation statistics frozen):
``measure`` and ``evaluate`` switch the model to eval for the call and restore each module's
mode afterwards, so a model handed over straight from training reads the same as one loaded
from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch

Direction = Literal["harm", "benefit"]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in eval mode for the block; every module's own mode restored afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@dataclass(frozen=True, eq=False)
class ProbeFamily:
    """Behaviours that are the per-example values of one probe batch.

    For ``index`` (positions of examples, a long tensor), ``per_example(model(inputs[index]),
    index)`` is the vector of those members' surrogates (example i is member i) and
    ``metrics(outputs, index)`` that of their metrics (the surrogates when None). Each member's
    own ``surrogate`` must equal its entry: scoring may use either.
    """

    inputs: torch.Tensor
    per_example: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metrics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class Behaviour:
    name: str
    direction: Direction
    surrogate: Callable[[torch.nn.Module], torch.Tensor]
    metric: Callable[[torch.nn.Module], float] | None = None
    description: str = ""
    probe_digest: str = ""
    metric_name: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    joint: Callable[[torch.nn.Module], tuple[torch.Tensor, float]] | None = None
    family: ProbeFamily | None = None
    member: int = 0  # this behaviour's example in ``family``
    probe_size: int = 0  # examples (or prompts) in the probe set; 0 when not known

    @property
    def probe_examples(self) -> int:
        """The probe set's size: ``probe_size``, else the family's size when a member of one."""
        return self.probe_size or (len(self.family) if self.family is not None else 0)

    def __post_init__(self) -> None:
        if self.direction not in ("harm", "benefit"):
            raise ValueError(f"behaviour {self.name!r}: direction must be harm or benefit")

    def measure(self, model: torch.nn.Module) -> float:
        """The reported metric (the surrogate's value when no metric is given), in eval mode."""
        with torch.no_grad(), eval_mode(model):
            if self.joint is not None:
                return float(self.joint(model)[1])
            if self.metric is not None:
                return float(self.metric(model))
            return float(self.surrogate(model))

    def evaluate(self, model: torch.nn.Module) -> tuple[torch.Tensor, float]:
        """(surrogate, metric) at ``model`` in eval mode, the surrogate differentiable."""
        with eval_mode(model):
            if self.joint is not None:
                value, metric = self.joint(model)
                return value, float(metric)
            value = self.surrogate(model)
            if self.metric is None:
                return value, float(value.detach()) if torch.is_tensor(value) else float(value)
            return value, self.measure(model)
