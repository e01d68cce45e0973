"""``replay``: the exact leave-stage-out counterfactual, the ground truth of every estimator.

For each stage k the model re-enters stage k+1 as it entered stage k (parameters θ_{s_k}; under
``carry`` the optimizer state σ_{s_k}) and stages k+1..K run again with their logged batches,
learning rates, hyperparameters and seeds (``auditor.lineage.counterfactual``). The effect is
f(θ_T) − f(θ_T^{(−k)}), evaluated directly. Cost: Σ_k (T − e_k) training steps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import StageEffects, StageEmbeddings
from auditor.estimators.common import effects_record, embeddings_from_flat, settings_hash
from auditor.estimators.device import check_device, task_on
from auditor.estimators.families import values_at
from auditor.estimators.layout import ParamLayout, load_flat
from auditor.lineage.counterfactual import load_model, run_without_stage
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


def counterfactual_model(version: ModelVersion, root: str | Path, task: TrainingTask,
                         k: int) -> torch.nn.Module:
    """θ_T^{(−k)}; for the last stage simply θ_{s_K}."""
    if k == len(version.stages) - 1:
        return load_model(task, version, Path(root), version.stages[k].theta_start)
    return run_without_stage(version, root, task, k)


class ReplayEstimator:
    name: ClassVar[str] = "replay"
    version: ClassVar[str] = "1"

    def __init__(self, stages: Sequence[int] | None = None, device: str = "cpu"):
        self.stages = None if stages is None else sorted(set(stages))
        self.device = check_device(device)  # CPU by default: only CPU replay is bitwise

    @property
    def config_hash(self) -> str:
        return settings_hash(self.name, self.version, {})

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        """e_k = θ_T − θ_T^{(−k)} (zeros for stages not replayed), plus the models themselves."""
        started = time.perf_counter()
        task = task_on(task, self.device)
        layout = ParamLayout.of(task.build_model())
        final = load_flat(layout, version.stages[-1].theta_end, root)
        chosen = self.stages if self.stages is not None else range(len(version.stages))
        models, flats = {}, []
        for k in range(len(version.stages)):
            if k not in chosen:
                flats.append(torch.zeros_like(final))
                continue
            models[k] = counterfactual_model(version, root, task, k)
            flats.append(final - layout.flatten(dict(models[k].named_parameters())))
        return embeddings_from_flat(self, version, layout, flats, started,
                                    {"counterfactuals": models})

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module, use_metric: bool = False) -> StageEffects:
        """Exact effects; NaN rows for stages that were not replayed."""
        started = time.perf_counter()
        final = values_at(model, behaviours, use_metric)
        effects = np.full((len(embeddings.stages), len(behaviours)), np.nan)
        for k, other in embeddings.extra["counterfactuals"].items():
            effects[k] = final - values_at(other, behaviours, use_metric)
        return effects_record(embeddings, behaviours, model, effects, started)
