"""``naive``: e_k = θ_end(k) − θ_start(k), the stage's own parameter change.

It ignores what later stages do to that change (momentum tails, weight-decay shrinkage, Adam's
preconditioning). The optimizer-aware estimators exist to do better; reports show this baseline
beside them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.device import resolve_device
from auditor.estimators.records import stage_embeddings
from auditor.estimators.scoring.gradients import score_by_gradients
from auditor.hashing import config_hash
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


class NaiveEstimator(Estimator):
    """No settings but ``device``."""

    name: ClassVar[str] = "naive"
    version: ClassVar[str] = "1"

    @property
    def config_hash(self) -> str:
        # without a "settings" key: the form of the first release, kept so stored runs match
        return config_hash({"estimator": self.name, "version": self.version})

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        resolve_device(self.device)  # checked here; the differences are CPU float64
        vectors = []
        for stage in version.stages:
            start = load_tensors(stage.theta_start, root)
            end = load_tensors(stage.theta_end, root)
            vectors.append({name: (end[name].double() - start[name].double())
                            for name in end if name in start and end[name].is_floating_point()})
        return stage_embeddings(self, version, vectors, started)

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        return score_by_gradients(embeddings, behaviours, model)
