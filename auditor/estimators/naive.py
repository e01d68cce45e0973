"""``naive``: e_k = θ_end(k) − θ_start(k), the stage's own parameter change.

It ignores what later stages do to that change (momentum tails, weight-decay shrinkage, Adam's
preconditioning). The optimizer-aware estimators exist to do better; reports show this baseline
beside them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.device import resolve_device
from auditor.errors import EstimatorError
from auditor.estimators.propagation.h0_stream import PRECISIONS
from auditor.estimators.records import stage_embeddings
from auditor.estimators.scoring.gradients import score_by_gradients
from auditor.estimators.settings import EstimatorSettings, check_bool, replace_setting, setting
from auditor.hashing import config_hash
from auditor.lineage.checkpoints import LazyCheckpoints, load_tensors
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


@dataclass(frozen=True)
class NaiveSettings(EstimatorSettings):
    precision: str = setting("float64", "float64 (default) or float32 (half the memory of the "
                             "embeddings; docs/scaling.md#precision)", hashed="precision")
    stream: bool = setting(True, "read one tensor at a time from memory-mapped checkpoints "
                           "(docs/scaling.md); not in the config hash", hashed=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        replace_setting(self, "stream", check_bool("naive", "stream", self.stream))
        if self.precision not in PRECISIONS:
            raise EstimatorError(f"naive: precision must be float64 or float32, not "
                                 f"{self.precision!r}")
        if self.precision != "float64" and not self.stream:
            raise EstimatorError("naive: precision float32 needs stream=True")


class NaiveEstimator(Estimator):
    """The stage's own parameter change."""

    name: ClassVar[str] = "naive"
    version: ClassVar[str] = "1"
    Settings = NaiveSettings
    settings: NaiveSettings

    @property
    def config_hash(self) -> str:
        # without a "settings" key: the form of the first release, kept so stored runs match
        # (float64: the numbers of that release); float32 hashes its precision
        if self.settings.precision != "float64":
            return config_hash({"estimator": self.name, "version": self.version,
                                "settings": {"precision": self.settings.precision}})
        return config_hash({"estimator": self.name, "version": self.version})

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        device = resolve_device(self.device)
        if self.settings.stream:
            dtype = PRECISIONS[self.settings.precision]
            return stage_embeddings(self, version, _streamed(version, root, dtype, device),
                                    started)
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


def _streamed(version: ModelVersion, root: str | Path, dtype: torch.dtype,
              device: torch.device) -> list[dict[str, torch.Tensor]]:
    """θ_end − θ_start tensor by tensor from the memory-mapped checkpoints (on ``device``,
    kept on the CPU)."""
    read = LazyCheckpoints(root)
    vectors = []
    for stage in version.stages:
        start, end = read(stage.theta_start), read(stage.theta_end)
        vector = {}
        for name in end.keys():
            if name not in start.keys():
                continue
            after = end.get(name)
            if not after.is_floating_point():
                continue
            before = start.get(name)
            vector[name] = (after.to(device, dtype) - before.to(device, dtype)).to("cpu")
        vectors.append(vector)
    return vectors
