"""Leave-stage-out retraining: the model as it would be had stage k never happened.

The model enters stage k+1 exactly as it entered stage k (parameters θ_{s_k}; under ``carry`` the
optimizer state σ_{s_k}), then stages k+1..K run with their logged batches, hyperparameters and
seeds. This is the ground truth of every estimator and the mechanism of ``auditor remediate``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from auditor.errors import EstimatorError
from auditor.lineage.checkpoints import Tensors, load_model_state, load_tensors
from auditor.lineage.models import ModelVersion, Stage
from auditor.lineage.replay import run_stage
from auditor.task import TrainingTask

StageEnd = Callable[[Stage, torch.nn.Module, Tensors], None]


def load_model(task: TrainingTask, version: ModelVersion, root: Path, ref) -> torch.nn.Module:
    model = task.build_model()
    load_model_state(model, load_tensors(ref, root), source=ref.uri)
    return model.eval()  # measured in eval mode; replay switches to train mode itself


def run_without_stage(version: ModelVersion, root: str | Path, task: TrainingTask,
                      skipped: int, *, on_stage_end: StageEnd | None = None) -> torch.nn.Module:
    """Final model of the run without stage index ``skipped`` (0-based)."""
    root = Path(root)
    stages = version.stages
    if not 0 <= skipped < len(stages):
        raise EstimatorError(f"stage index {skipped} out of range for {version.key}")
    later = stages[skipped + 1:]
    for stage in later:
        if not stage.replayable:
            raise EstimatorError(f"stage {stage.id!r} of {version.key} has no batch log; "
                                 "leave-stage-out replay needs the Recorder's batch ids")
    model = load_model(task, version, root, stages[skipped].theta_start)
    carried = _entry_state(stages[skipped], root)
    for stage in later:
        state_in = carried if stage.convention == "carry" else None
        carried = run_stage(model, task, stage, state_in)
        if on_stage_end is not None:
            on_stage_end(stage, model, carried)
    return model


def _entry_state(stage: Stage, root: Path) -> Tensors | None:
    """The optimizer state the skipped stage started from (what a carry successor inherits)."""
    if stage.optimizer_start is None:
        return None
    return load_tensors(stage.optimizer_start, root)
