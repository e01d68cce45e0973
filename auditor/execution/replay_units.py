"""Replay units as work items: (version, stage k) — retrain stages k+1..K from the entry state of
stage k and evaluate every behaviour on the counterfactual model. One unit gives the exact effect
of stage k on all behaviours at once (docs/certify.md). Units are independent: the executors run
them like estimator items (in this process or as Ray tasks, GPU-aware, retried), and the driver
stores each as a run of kind ``replay-unit`` whose rows carry ``evidence = exact`` — so a
re-run skips the units already stored (resume).

Cost before running: the training steps of stages k+1..K (0 for the last stage, whose
counterfactual is its own start checkpoint) times the step time the lineage measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.execution.items import root_path
from auditor.hashing import config_hash
from auditor.lineage.models import ModelVersion

UNIT_RUN_KIND = "replay-unit"
REPLAY = "replay"


@dataclass(frozen=True)
class ReplayUnitItem:
    key: str
    stage_index: int
    stage_id: str
    cost: int  # training steps
    version_json: str
    root_uri: str
    checkpoints: tuple[tuple[str, str], ...]
    task: str
    behaviours: str
    inputs_digest: str = ""  # task/behaviour code and probe data (auditor.execution.inputs)
    estimator_config_hash: str = ""  # the replay estimator's, so unit rows compose into it
    seconds: float = field(default=0.0, compare=False)  # expected, from the lineage
    # where the retraining runs: "auto" (the worker's GPU when it was granted one, else CPU),
    # "cpu" (bitwise the recorded CPU run), "cuda" / "cuda:N". Not in the run config: the
    # numbers agree up to rounding, as for the estimators' ``device`` setting.
    device: str = field(default="auto", compare=False)

    def run_config(self) -> dict[str, Any]:
        return {"work_item": "replay-unit/1", "version": self.key, "stage": self.stage_id,
                "stage_index": self.stage_index, "task": self.task,
                "behaviours": self.behaviours, "inputs_digest": self.inputs_digest,
                "checkpoints": [list(pair) for pair in self.checkpoints]}

    @cached_property
    def item_hash(self) -> str:
        return config_hash(self.run_config())

    @property
    def label(self) -> str:
        return f"{self.key} replay -{self.stage_id} ({self.cost:,} steps)"

    @property
    def estimator(self) -> str:
        return REPLAY

    @property
    def uses_gpu(self) -> bool:
        """Whether a GPU granted to this unit's task would be used (executors ask for one
        only then, and only when they have GPUs to give)."""
        return self.device != "cpu"


def step_seconds(version: ModelVersion) -> float | None:
    """Mean seconds per training step, from the stages' recorded start and end times."""
    seconds = steps = 0
    for stage in version.stages:
        if stage.started_at and stage.ended_at and stage.steps:
            seconds += (stage.ended_at - stage.started_at).total_seconds()
            steps += stage.steps
    return seconds / steps if steps and seconds > 0 else None


def replay_units(version: ModelVersion, root: str | Path, *, task: str, behaviours: str,
                 inputs_digest: str = "", estimator_config_hash: str = "",
                 stages: list[int] | None = None, device: str = "auto"
                 ) -> list[ReplayUnitItem]:
    """The replay units of ``version`` (every stage, or ``stages``), with their costs."""
    steps = [s.steps for s in version.stages]
    per_step = step_seconds(version) or 0.0
    refs = tuple((ref.uri, ref.sha256) for ref in version.checkpoint_refs())
    chosen = range(len(steps)) if stages is None else stages
    return [ReplayUnitItem(version.key, k, version.stages[k].id, int(sum(steps[k + 1:])), "",
                           Path(root).resolve().as_uri(), refs, task, behaviours, inputs_digest,
                           estimator_config_hash, per_step * sum(steps[k + 1:]), device)
            for k in chosen]


def can_replay(version: ModelVersion, k: int) -> bool:
    """Whether unit k can run: every later stage has its batch log."""
    return all(stage.replayable for stage in version.stages[k + 1:])


def unit_effects(version: ModelVersion, root: str | Path, task, behaviours: list, k: int,
                 final_values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(exact effects f(θ_T) − f(θ_T^{(−k)}) of every behaviour, metrics at θ_T)."""
    import torch

    from auditor.lineage.counterfactual import load_model, run_without_stage

    root = Path(root)
    final = load_model(task, version, root, version.stages[-1].theta_end)
    if k == len(version.stages) - 1:
        other = load_model(task, version, root, version.stages[k].theta_start)
    else:
        other = run_without_stage(version, root, task, k)
    with torch.no_grad():
        if final_values is None:
            final_values = np.array([float(b.surrogate(final)) for b in behaviours])
        values = np.array([float(b.surrogate(other)) for b in behaviours])
    metrics = np.array([b.measure(final) for b in behaviours])
    return final_values - values, metrics


def _convention(version: ModelVersion) -> str:
    """As the estimators name it: the boundary convention of stages 2..K, or ``mixed``."""
    found = {s.convention for s in version.stages[1:]} or {"reset"}
    return found.pop() if len(found) == 1 else "mixed"


def run_replay_unit(item: ReplayUnitItem) -> pa.Table:
    """The worker of a replay unit: one score row per behaviour, ``evidence = exact``."""
    from auditor.behaviours.library import load_behaviours
    from auditor.estimators.device import task_on
    from auditor.execution.worker import _test_hooks
    from auditor.task import load_task

    _test_hooks()
    version = ModelVersion.model_validate_json(item.version_json)
    named = dict(item.checkpoints)
    for ref in version.checkpoint_refs():
        if named.get(ref.uri) != ref.sha256:
            from auditor.errors import CheckpointError

            raise CheckpointError(f"{item.key}: checkpoint {ref.uri} does not match the "
                                  "replay unit's hash list")
    behaviours = load_behaviours(item.behaviours)
    task = task_on(load_task(item.task), item.device)  # "auto": the GPU Ray granted, if any
    effects, metrics = unit_effects(version, root_path(item.root_uri), task, behaviours,
                                    item.stage_index)
    stage = version.stages[item.stage_index]
    n = len(behaviours)
    return pa.table({
        "model": [version.model] * n, "version": [version.version] * n,
        "stage_index": pa.array([item.stage_index] * n, pa.int32()),
        "stage_id": [stage.id] * n, "stage_kind": [stage.kind] * n,
        "behaviour": [b.name for b in behaviours], "direction": [b.direction for b in behaviours],
        "estimator": [REPLAY] * n, "estimator_version": ["1"] * n,
        "convention": [_convention(version)] * n,
        "config_hash": [item.estimator_config_hash] * n,
        "effect": pa.array(effects, pa.float64()),
        "share": pa.nulls(n, pa.float64()), "metric_value": pa.array(metrics, pa.float64()),
        "evidence": ["exact"] * n, "lo": pa.array(effects, pa.float64()),
        "hi": pa.array(effects, pa.float64()), "calibration_id": pa.nulls(n, pa.string())})
