"""Scoring by evaluation instead of gradients: f(θ_T) − f(θ_T − e_k).

The plug-in form works for metrics that are not differentiable (accuracy, thresholded rates):
``use_metric=True`` evaluates each behaviour's reported metric instead of its surrogate.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import StageEffects, StageEmbeddings, Vector
from auditor.estimators.records import effects_record
from auditor.estimators.scoring.families import values_at


def shifted(model: torch.nn.Module, vector: Vector, scale: float = -1.0) -> torch.nn.Module:
    """A copy of ``model`` with ``scale · vector`` added to its parameters."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if name in vector:
                moved = param.double() + scale * vector[name].to(param.device, torch.float64)
                param.copy_(moved.to(param.dtype))
    return other


def score_by_plugin(embeddings: StageEmbeddings, behaviours: list[Behaviour],
                    model: torch.nn.Module, use_metric: bool = False) -> StageEffects:
    """effects[k, q] = f_q(θ_T) − f_q(θ_T − e_k)."""
    started = time.perf_counter()
    final = values_at(model, behaviours, use_metric)
    effects = np.stack([final - values_at(shifted(model, vector), behaviours, use_metric)
                        for vector in embeddings.vectors])
    return effects_record(embeddings, behaviours, model, effects, started)
