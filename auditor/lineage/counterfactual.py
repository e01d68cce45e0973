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
from auditor.lineage.continuation import build_structure, enter_stage, structure_index
from auditor.lineage.models import ModelVersion, Stage
from auditor.lineage.replay import run_stage
from auditor.task import TrainingTask

StageEnd = Callable[[Stage, torch.nn.Module, Tensors], None]
StageStart = Callable[[Stage, torch.nn.Module], None]


def load_model(task: TrainingTask, version: ModelVersion, root: Path, ref) -> torch.nn.Module:
    """The model of checkpoint ``ref`` of ``version``, with the parameter set of the stage it
    belongs to (adapters included), in eval mode."""
    model = build_structure(task, version, structure_index(version, ref.sha256))
    load_model_state(model, load_tensors(ref, root), source=ref.uri)
    return model.eval()  # measured in eval mode; replay switches to train mode itself


def final_model(version: ModelVersion, root: str | Path, task: TrainingTask) -> torch.nn.Module:
    """θ_T: the model at the end of ``version``'s last stage, with ``requires_grad`` set on
    exactly the parameters the lineage trained (``ModelVersion.trained_parameters``): a task
    whose fresh model freezes parameters (an adapter setup does) must not hide the history of
    parameters earlier stages trained, or those stages would score exactly zero."""
    model = load_model(task, version, Path(root), version.stages[-1].theta_end)
    trained = version.trained_parameters()
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)
    return model


def run_without_stage(version: ModelVersion, root: str | Path, task: TrainingTask,
                      skipped: int, *, on_stage_end: StageEnd | None = None,
                      on_stage_start: StageStart | None = None) -> torch.nn.Module:
    """Final model of the run without stage index ``skipped`` (0-based).

    A skipped stage that added adapters is left out with them at their recorded initial values
    (the start of that stage: LoRA starts as the identity), so later stages that train them
    still find them; a later stage that adds adapters gets them from its recorded initialisation.
    """
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
        model = enter_stage(task, model, stage, root)
        if on_stage_start is not None:
            on_stage_start(stage, model)
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
