"""Remediation by retraining: a new version whose lineage lacks the blamed stage.

The later stages are re-run from the point where the blamed stage began (``run_without_stage``),
their new boundary checkpoints written as safetensors, and the result recorded as a new version
whose ``parent`` is the original. A re-run stage that adds adapters starts from the adapted model
(its adapters at their recorded initial values). Behaviours measure before and after in eval
mode (``Behaviour.measure``), the models loaded as ``load_model`` gives them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import torch

from auditor.errors import InputError
from auditor.lineage.checkpoints import Tensors, model_state, resolve, save_tensors
from auditor.lineage.counterfactual import run_without_stage
from auditor.lineage.io import write_lineage_json
from auditor.lineage.models import CheckpointRef, ModelVersion, Stage
from auditor.lineage.recorder import LINEAGE_FILE
from auditor.task import TrainingTask


def stage_index(version: ModelVersion, stage_id: str) -> int:
    for index, stage in enumerate(version.stages):
        if stage.id == stage_id:
            return index
    known = ", ".join(s.id for s in version.stages)
    raise InputError(f"{version.key} has no stage {stage_id!r} (stages: {known})")


def drop_stage(version: ModelVersion, root: str | Path, task: TrainingTask, stage_id: str,
               out_dir: str | Path, new_version: str,
               created_at: datetime | None = None) -> ModelVersion:
    """Record ``version`` without ``stage_id`` as ``new_version`` in ``out_dir``."""
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    k = stage_index(version, stage_id)
    if len(version.stages) == 1:
        raise InputError(f"{version.key} has a single stage; removing it leaves no model")
    kept = [_absolute(stage, root) for stage in version.stages[:k]]
    skipped = version.stages[k]
    entry = _absolute(skipped, root)
    replayed: list[Stage] = []
    starts: dict[str, CheckpointRef] = {}

    def start(stage: Stage, model: torch.nn.Module) -> None:
        if stage.changes is not None:  # the adapted model, adapters at their recorded values
            starts[stage.id] = save_tensors(model_state(model), out_dir / "checkpoints",
                                            out_dir, prefix="model")

    def record(stage: Stage, model: torch.nn.Module, opt_state: Tensors) -> None:
        previous = replayed[-1] if replayed else None
        replayed.append(_rerun_stage(stage, previous, entry, model, opt_state, out_dir,
                                     starts.get(stage.id)))

    run_without_stage(version, root, task, k, on_stage_end=record, on_stage_start=start)
    new = version.model_copy(update={
        "version": new_version, "parent": version.version,
        "created_at": created_at or datetime.now(timezone.utc),
        "description": f"{version.description} (remediated: stage {stage_id!r} removed)".strip(),
        "stages": kept + replayed})
    new = ModelVersion.model_validate(new.model_dump())
    write_lineage_json(new, out_dir / LINEAGE_FILE)
    return new


def _rerun_stage(stage: Stage, previous: Stage | None, entry: Stage, model: torch.nn.Module,
                 opt_state: Tensors, out_dir: Path, start: CheckpointRef | None = None) -> Stage:
    folder = out_dir / "checkpoints"
    theta_end = save_tensors(model_state(model), folder, out_dir, prefix="model")
    opt_end = save_tensors(opt_state, folder, out_dir, prefix="optim")
    theta_start = start or (previous.theta_end if previous else entry.theta_start)
    convention, opt_start = stage.convention, None
    if stage.convention == "carry":
        opt_start = previous.optimizer_end if previous else entry.optimizer_start
        convention = "carry" if opt_start is not None else "reset"
    now = datetime.now(timezone.utc)
    return stage.model_copy(update={
        "theta_start": theta_start, "theta_end": theta_end, "optimizer_start": opt_start,
        "optimizer_end": opt_end, "convention": convention, "started_at": now, "ended_at": now,
        "notes": f"re-run without stage {entry.id!r}"})


def _absolute(stage: Stage, root: Path) -> Stage:
    """The stage with checkpoint URIs made absolute, so a lineage in another folder finds them."""
    update = {}
    for field in ("theta_start", "theta_end", "optimizer_start", "optimizer_end"):
        ref: CheckpointRef | None = getattr(stage, field)
        if ref is not None:
            update[field] = ref.model_copy(update={"uri": str(resolve(ref, root).resolve())})
    return stage.model_copy(update=update)
