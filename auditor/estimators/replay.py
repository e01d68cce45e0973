"""``replay``: the exact leave-stage-out counterfactual, the ground truth of every estimator.

For each stage k the model re-enters stage k+1 as it entered stage k (parameters θ_{s_k}; under
``carry`` the optimizer state σ_{s_k}) and stages k+1..K run again with their logged batches,
learning rates, hyperparameters and seeds (``auditor.lineage.counterfactual``;
docs/maths.md#leave-stage-out). The effect is f(θ_T) − f(θ_T^{(−k)}), evaluated directly.
Cost: Σ_k (T − e_k) training steps.

Memory: the training of one counterfactual (the model, its gradients, the optimizer state of
the user's task), plus one model's tensors and one displacement tensor in float64 at a time:
each θ_T^{(−k)} and e_k go to disk once made (``replay_spill``; docs/scaling.md#replay) when K
of them would exceed ``spill_above_mb`` (default: the workspace), so the peak does not grow
with K.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import Estimator, EstimatorState, StageEffects, StageEmbeddings
from auditor.estimators.device import task_on
from auditor.estimators.records import effects_record, stage_embeddings
from auditor.estimators.replay_spill import CounterfactualModels, DisplacementFiles, SpillFolder
from auditor.estimators.scoring.families import values_at
from auditor.estimators.settings import EstimatorSettings, check_mib, replace_setting, setting
from auditor.estimators.workspace import release_freed_memory, workspace_bytes
from auditor.lineage.checkpoints import LazyCheckpoints
from auditor.lineage.continuation import build_structure
from auditor.lineage.counterfactual import load_model, run_without_stage
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout
from auditor.task import TrainingTask


def counterfactual_model(version: ModelVersion, root: str | Path, task: TrainingTask,
                         k: int) -> torch.nn.Module:
    """θ_T^{(−k)}; for the last stage simply θ_{s_K}."""
    if k == len(version.stages) - 1:
        return load_model(task, version, Path(root), version.stages[k].theta_start)
    return run_without_stage(version, root, task, k)


@dataclass(frozen=True)
class ReplaySettings(EstimatorSettings):
    device: str = setting("cpu", "where it retrains: cpu (default: only CPU replay is bitwise), "
                          "auto, cuda or cuda:N; not in the config hash", hashed=False)
    stages: tuple[int, ...] | None = setting(
        None, "stage indices to replay (default all; the others get NaN rows); not in the "
        "config hash", hashed=False)
    spill_above_mb: float | None = setting(
        None, "keep each counterfactual model and its displacement on disk once made, when K "
        "of them would take more than this many MiB (None, the default: more than the "
        "workspace; 0: always; docs/scaling.md#replay); not in the config hash", hashed=False)
    workspace_mb: float = setting(0.0, "MiB per file the spilled tensors are written in (0: "
                                  "auto, a quarter of the float32 model, 1 to 256 MiB); not "
                                  "in the config hash", hashed=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.spill_above_mb is not None:
            check_mib("replay", "spill_above_mb", self.spill_above_mb, " or None")
        check_mib("replay", "workspace_mb", self.workspace_mb, " (0: auto)")
        if self.stages is not None:
            if any(isinstance(k, bool) or not isinstance(k, int) for k in self.stages):
                raise EstimatorError(f"replay: stages must be stage indices, not {self.stages!r}")
            replace_setting(self, "stages", tuple(sorted(set(self.stages))))


@dataclass
class ReplayState(EstimatorState):
    """θ_T^{(−k)} of every replayed stage k (on disk when spilled; ``loaded()`` gives them
    one at a time)."""

    counterfactuals: CounterfactualModels = field(default_factory=CounterfactualModels)


class ReplayEstimator(Estimator):
    name: ClassVar[str] = "replay"
    version: ClassVar[str] = "1"
    handles_parameter_changes: ClassVar[bool] = True
    handles_merges: ClassVar[bool] = True
    recomputes_any: ClassVar[bool] = True
    Settings = ReplaySettings
    settings: ReplaySettings

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        """e_k = θ_T − θ_T^{(−k)} (zeros for stages not replayed), plus the models themselves."""
        started = time.perf_counter()
        task = task_on(task, self.device)
        # the final model's parameter set: adapters a stage added included
        layout = ParamLayout.of(build_structure(task, version, len(version.stages) - 1))
        final = LazyCheckpoints(root)(version.stages[-1].theta_end)
        chosen = (self.settings.stages if self.settings.stages is not None
                  else range(len(version.stages)))
        folder = self._spill_folder(len(version.stages), layout)
        models, displacements = CounterfactualModels(folder), DisplacementFiles(layout, folder)
        for k in range(len(version.stages)):
            if k not in chosen:
                continue
            model = counterfactual_model(version, root, task, k)
            displacements.add(k, final, model)
            models.keep(k, model)
            del model
            release_freed_memory()
        return stage_embeddings(self, version, displacements.vectors(len(version.stages)),
                                started, ReplayState(models))

    def _spill_folder(self, stages: int, layout: ParamLayout) -> SpillFolder | None:
        """A folder for the models and displacements when K of them (float32 parameters,
        float64 displacements) would exceed ``spill_above_mb`` MiB (None: the workspace)."""
        workspace = workspace_bytes(self.settings.workspace_mb, layout.total)
        above = self.settings.spill_above_mb
        limit = workspace if above is None else above * 2**20
        return SpillFolder(workspace) if stages * layout.total * 12 > limit else None

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module, use_metric: bool = False) -> StageEffects:
        """Exact effects; NaN rows for stages that were not replayed."""
        started = time.perf_counter()
        if not isinstance(embeddings.state, ReplayState):
            raise EstimatorError("replay scores only the embeddings its own prepare made")
        final = values_at(model, behaviours, use_metric)
        effects = np.full((len(embeddings.stages), len(behaviours)), np.nan)
        for k, other in embeddings.state.counterfactuals.loaded():
            effects[k] = final - values_at(other, behaviours, use_metric)
        release_freed_memory()
        return effects_record(embeddings, behaviours, model, effects, started)
