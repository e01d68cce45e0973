"""The estimator contract: ``prepare`` builds stage embeddings once, ``score`` answers behaviours.

Sign convention: ``effects[k, q]`` estimates f_q(θ_T) − f_q(θ_T without stage k), so a positive
effect means stage k *raised* behaviour q. For a harm behaviour that is blame; for a benefit
behaviour it is credit. Estimators import nothing of the store, Ray or reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

Vector = dict[str, torch.Tensor]  # one tensor per trainable parameter name


@dataclass
class StageEmbeddings:
    """e_k for every stage k: the parameter-space displacement the estimator attributes to k.

    A behaviour f is scored as effect_k ≈ ∇f(θ_T) · e_k (one gradient per behaviour), or by the
    plug-in form f(θ_T) − f(θ_T − e_k) for metrics that are not differentiable.
    """

    model: str
    version: str
    stages: tuple[str, ...]
    stage_kinds: tuple[str, ...]
    convention: str
    estimator: str
    estimator_version: str
    config_hash: str
    vectors: list[Vector]
    runtime_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageEffects:
    """K × Q stage effects with the settings that made them."""

    model: str
    version: str
    stages: tuple[str, ...]
    stage_kinds: tuple[str, ...]
    behaviours: tuple[str, ...]
    directions: tuple[str, ...]
    effects: np.ndarray  # float64, K × Q
    estimator: str
    estimator_version: str
    convention: str
    config_hash: str
    runtime_s: float
    metric_values: tuple[float, ...]

    @property
    def share(self) -> np.ndarray:
        """Stage k's part of the total harm of behaviour q (NaN where no stage adds harm)."""
        signs = np.array([1.0 if d == "harm" else -1.0 for d in self.directions])
        harm = np.clip(self.effects * signs, 0.0, None)
        total = harm.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = harm / total
        share[:, total <= 0] = np.nan
        share[:, ~np.isfinite(total)] = np.nan
        return share

    def effect(self, stage: str, behaviour: str) -> float:
        return float(self.effects[self.stages.index(stage), self.behaviours.index(behaviour)])


class Estimator(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]

    @property
    def config_hash(self) -> str: ...

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings: ...

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects: ...
