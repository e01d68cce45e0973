"""The estimator contract: ``prepare`` builds stage embeddings once, ``score`` answers behaviours.

Sign convention: ``effects[k, q]`` estimates f_q(θ_T) − f_q(θ_T without stage k), so a positive
effect means stage k *raised* behaviour q. For a harm behaviour that is blame; for a benefit
behaviour it is credit (docs/maths.md#sign-convention). Estimators import nothing of the store,
Ray or reports.

Every estimator subclasses ``Estimator``: it names itself (``name``, ``version``), declares one
frozen settings dataclass (``Settings``, auditor.estimators.settings), and implements ``prepare``
and ``score``. The registry (auditor.estimators.registry) is built from the subclasses that name
themselves; the config hash comes from the settings' hashed fields.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.parallel import ChunkMap
from auditor.estimators.settings import EstimatorSettings
from auditor.hashing import config_hash
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import Vector
from auditor.task import TrainingTask

__all__ = ["Estimator", "EstimatorState", "StageEffects", "StageEmbeddings", "Vector"]


class EstimatorState:
    """What an estimator keeps beside the stage vectors for its own ``score`` (typed per
    estimator: counterfactual models, a reverse-mode trajectory, TracIn's segments, ...).

    ``embeddings`` is False when the vectors are not the stage embeddings (reverse mode): such
    embeddings cannot be saved or scored by another method. ``portable`` names what a saved
    file's header lists of it.
    """

    embeddings: ClassVar[bool] = True
    mode: ClassVar[str | None] = None

    def portable(self) -> list[str]:
        return []


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
    state: EstimatorState | None = None

    @property
    def mode(self) -> str | None:
        """``"forward"`` or ``"reverse"`` for the unrolled estimators, else None."""
        return None if self.state is None else self.state.mode


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


class Estimator(ABC):
    """One stage-attribution method. ``Estimator(**values)`` or ``Estimator(settings)``."""

    name: ClassVar[str]
    version: ClassVar[str]
    Settings: ClassVar[type[EstimatorSettings]] = EstimatorSettings
    # whether the estimator handles stages that change the parameter set (adapters or a head
    # added, tensors renamed or removed; docs/maths.md#changing-parameter-sets), and merged
    # adapters (``recomputes=`` recorded as LoRA merges, docs/maths.md#merged-adapters); only
    # replay reruns a recomputed tensor that has no merge description (``recomputes_any``). An
    # estimator that does not refuses the lineage in one line (registry.attribute)
    handles_parameter_changes: ClassVar[bool] = False
    handles_merges: ClassVar[bool] = False
    recomputes_any: ClassVar[bool] = False
    # how a streamed estimator runs its groups of tensors (``workers`` > 1): None runs them in
    # this process; the execution room sets a Ray map (auditor.estimators.parallel)
    chunk_map: ChunkMap | None = None

    def __init__(self, settings: EstimatorSettings | None = None, /, **values: object):
        if settings is None:
            settings = self.Settings.from_values(self.name, values)
        elif values:
            raise EstimatorError(f"estimator {self.name!r} takes one {self.Settings.__name__} "
                                 "or keyword settings, not both")
        elif type(settings) is not self.Settings:
            raise EstimatorError(f"estimator {self.name!r} takes a {self.Settings.__name__}, "
                                 f"not a {type(settings).__name__}")
        self.settings = settings

    @classmethod
    def registered(cls) -> list[type[Estimator]]:
        """The concrete subclasses that name themselves, in definition order."""
        found: list[type[Estimator]] = []
        for sub in cls.__subclasses__():
            if "name" in sub.__dict__ and not inspect.isabstract(sub):
                found.append(sub)
            found.extend(sub.registered())
        return found

    @property
    def device(self) -> str:
        return self.settings.device

    @property
    def config_hash(self) -> str:
        """The estimator, its version and the settings that change the numbers (not
        ``device`` or a mode that changes only the cost)."""
        return config_hash({"estimator": self.name, "version": self.version,
                            "settings": self.settings.hashed()})

    def plan_for(self, queries: int) -> None:
        """Told the number of behaviours before ``prepare`` (the unrolled estimators pick their
        mode by it); nothing by default."""
        return None

    @abstractmethod
    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        """The stage embeddings of ``version`` (checkpoints under ``root``)."""

    @abstractmethod
    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        """K × Q effects of the stages on ``behaviours``, ``model`` being θ_T."""
