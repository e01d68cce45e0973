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
from auditor.estimators.base import StageEffects, StageEmbeddings
from auditor.estimators.device import check_device, resolve_device
from auditor.estimators.gradients import score_by_gradients
from auditor.hashing import config_hash
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


class NaiveEstimator:
    name: ClassVar[str] = "naive"
    version: ClassVar[str] = "1"

    def __init__(self, device: str = "auto"):
        self.device = check_device(device)  # not in the config hash: same numbers up to rounding

    @property
    def config_hash(self) -> str:
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
        return StageEmbeddings(
            model=version.model, version=version.version,
            stages=tuple(s.id for s in version.stages),
            stage_kinds=tuple(s.kind for s in version.stages),
            convention=_convention(version), estimator=self.name,
            estimator_version=self.version, config_hash=self.config_hash, vectors=vectors,
            runtime_s=time.perf_counter() - started)

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        return score_by_gradients(embeddings, behaviours, model)


def _convention(version: ModelVersion) -> str:
    conventions = {s.convention for s in version.stages[1:]} or {"reset"}
    return conventions.pop() if len(conventions) == 1 else "mixed"
