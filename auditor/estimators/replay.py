"""``replay``: the exact leave-stage-out counterfactual, the ground truth of every estimator.

For each stage k the model re-enters stage k+1 as it entered stage k (parameters θ_{s_k}; under
``carry`` the optimizer state σ_{s_k}) and stages k+1..K run again with their logged batches,
learning rates, hyperparameters and seeds (``auditor.lineage.counterfactual``;
docs/maths.md#leave-stage-out). The effect is f(θ_T) − f(θ_T^{(−k)}), evaluated directly.
Cost: Σ_k (T − e_k) training steps.
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
from auditor.estimators.records import effects_record, embeddings_from_flat
from auditor.estimators.scoring.families import values_at
from auditor.estimators.settings import EstimatorSettings, replace_setting, setting
from auditor.lineage.continuation import build_structure
from auditor.lineage.counterfactual import load_model, run_without_stage
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout, load_flat
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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stages is not None:
            if any(isinstance(k, bool) or not isinstance(k, int) for k in self.stages):
                raise EstimatorError(f"replay: stages must be stage indices, not {self.stages!r}")
            replace_setting(self, "stages", tuple(sorted(set(self.stages))))


@dataclass
class ReplayState(EstimatorState):
    """θ_T^{(−k)} of every replayed stage k."""

    counterfactuals: dict[int, torch.nn.Module] = field(default_factory=dict)


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
        final = load_flat(layout, version.stages[-1].theta_end, root)
        chosen = (self.settings.stages if self.settings.stages is not None
                  else range(len(version.stages)))
        models, flats = {}, []
        for k in range(len(version.stages)):
            if k not in chosen:
                flats.append(torch.zeros_like(final))
                continue
            models[k] = counterfactual_model(version, root, task, k)
            flats.append(final - layout.flatten(dict(models[k].named_parameters())))
        return embeddings_from_flat(self, version, layout, flats, started, ReplayState(models))

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module, use_metric: bool = False) -> StageEffects:
        """Exact effects; NaN rows for stages that were not replayed."""
        started = time.perf_counter()
        if not isinstance(embeddings.state, ReplayState):
            raise EstimatorError("replay scores only the embeddings its own prepare made")
        final = values_at(model, behaviours, use_metric)
        effects = np.full((len(embeddings.stages), len(behaviours)), np.nan)
        for k, other in embeddings.state.counterfactuals.items():
            effects[k] = final - values_at(other, behaviours, use_metric)
        return effects_record(embeddings, behaviours, model, effects, started)
