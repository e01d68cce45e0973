"""A behaviour: what the audit measures at the final model.

``surrogate(model)`` is a differentiable scalar the estimators differentiate; ``metric(model)`` is
the number people read (a rate, an accuracy gap). ``direction`` says whether more of it is harm
(a stage that raises it gets blame) or benefit (a stage that raises it gets credit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

Direction = Literal["harm", "benefit"]


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

    def __post_init__(self) -> None:
        if self.direction not in ("harm", "benefit"):
            raise ValueError(f"behaviour {self.name!r}: direction must be harm or benefit")

    def measure(self, model: torch.nn.Module) -> float:
        """The reported metric (the surrogate's value when no metric is given)."""
        with torch.no_grad():
            if self.metric is not None:
                return float(self.metric(model))
            return float(self.surrogate(model))
