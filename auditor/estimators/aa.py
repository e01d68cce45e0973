"""``aa`` (default): the first-order, Hessian-free AA-score (docs/maths.md#h0-propagation, "AA-H0").

With H ≡ 0 the later stages see the same gradients in both runs, so a removed stage's
displacement (D_k, M_k) is only shrunk by later weight decay and extended by the momentum tail
left in the optimizer buffer (``carry``). Everything is driven by the logged per-step scalars:

* SGD (momentum, Nesterov, dampening, coupled weight decay): the 2×2 maps of (δ, δm) are scalars
  per parameter group, so each later stage is one 2×2 product per group class — O(T) scalar
  work, then O(K·P) to form e_k = Φ₀₀·D_k + Φ₀₁·M_k.
* Adam/AdamW: decoupled decay is the scalar Π(1 − ηλ); under ``carry`` the momentum tail
  b_k ⊙ M_k needs the preconditioner p_t after e_k. It is approximated from the second moment
  v at the nearest stage boundary (bias correction c2_t from the logged step counts), and the
  tail is cut once β₁ⁿ has decayed below 1e-12. Adam with coupled L2 runs per coordinate.

Needs only boundary checkpoints (and boundary optimizer states for ``carry``) and the step log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.device import resolve_device
from auditor.estimators.propagation.h0 import TAIL_CUTOFF, stage_embeddings_h0
from auditor.estimators.propagation.h0_groups import grouped_embeddings
from auditor.estimators.propagation.h0_stream import PRECISIONS, streamed_embeddings
from auditor.estimators.records import embeddings_from_flat, stage_embeddings
from auditor.estimators.scoring.gradients import score_by_gradients
from auditor.estimators.scoring.plugin import score_by_plugin
from auditor.estimators.settings import (
    EstimatorSettings,
    check_bool,
    check_streaming,
    replace_setting,
    setting,
    spill_setting,
    workspace_setting,
)
from auditor.estimators.shards import spills
from auditor.estimators.workspace import workspace_bytes
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.union import lineage_layout
from auditor.task import TrainingTask


@dataclass(frozen=True)
class AASettings(EstimatorSettings):
    plugin: bool = setting(False, "score f(θ_T) − f(θ_T − e_k) instead of ∇f(θ_T)·e_k")
    precision: str = setting("float64", "float64 (default, the exactness tests' precision) or "
                             "float32 (half the memory and time; docs/scaling.md#precision)",
                             hashed="precision")
    stream: bool = setting(True, "compute one chunk of a parameter tensor at a time from the "
                           "checkpoints (docs/scaling.md); False builds whole-model vectors; "
                           "not in the config hash", hashed=False)
    spill_above_mb: float | None = spill_setting()
    workers: int = setting(1, "streamed: split the tensors into this many contiguous groups, "
                           "each one call of the estimator's chunk map (Ray tasks under the "
                           "Ray executor), joined in order: the same numbers bit for bit "
                           "(docs/scaling.md#several-workers); not in the config hash",
                           hashed=False)
    workspace_mb: float = workspace_setting()

    def hashed(self) -> dict[str, Any]:
        values = {"tail_cutoff": TAIL_CUTOFF, **super().hashed()}
        if self.precision != "float64":  # float64 hashes as before the setting existed
            values["precision"] = self.precision
        return values

    def __post_init__(self) -> None:
        super().__post_init__()
        replace_setting(self, "plugin", check_bool("aa", "plugin", self.plugin))
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise EstimatorError("aa: workers must be a whole number ≥ 1")
        check_streaming("aa", self, PRECISIONS)


class AAEstimator(Estimator):
    """The first-order, Hessian-free AA-score (the default estimator)."""

    name: ClassVar[str] = "aa"
    version: ClassVar[str] = "1"
    handles_parameter_changes: ClassVar[bool] = True
    handles_merges: ClassVar[bool] = True
    Settings = AASettings
    settings: AASettings

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        device = resolve_device(self.device)
        lineage = lineage_layout(task, version)  # stages that add adapters: their union
        layout = lineage.final
        if self.settings.stream:
            dtype = PRECISIONS[self.settings.precision]
            workspace = workspace_bytes(self.settings.workspace_mb, layout.total)
            spill = spills(len(version.stages), layout.total, dtype, self.settings.spill_above_mb,
                           workspace)
            names_at = ([lineage.names_at(k) for k in range(len(version.stages))]
                        if lineage.changes else None)
            if self.settings.workers > 1:
                vectors = grouped_embeddings(version, root, layout, dtype, device, spill,
                                             names_at, workspace, self.settings.workers,
                                             self.chunk_map)
            else:
                vectors = streamed_embeddings(version, root, layout, dtype, device, spill=spill,
                                              names_at=names_at, workspace=workspace)
            return stage_embeddings(self, version, vectors, started)
        # whole-model float64 on the CPU
        flats = stage_embeddings_h0(version, root, lineage.union, lineage.views)
        return embeddings_from_flat(self, version, layout,
                                    [lineage.final_part(f) for f in flats], started)

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        if self.settings.plugin:
            return score_by_plugin(embeddings, behaviours, model)
        return score_by_gradients(embeddings, behaviours, model)
