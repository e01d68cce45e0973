"""Builders of lineage and score fixtures for tests that need no real checkpoints.

Checkpoint hashes are fake but well-formed sha256 strings derived from names, so the same
arguments always build the same ModelVersion.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from auditor.lineage.models import (
    CheckpointRef,
    DatasetRef,
    ModelVersion,
    OptimizerLog,
    ParamGroup,
    Stage,
    StepLog,
)

STAGE_KINDS = ("pretrain", "fine-tune", "alignment")


def fake_sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _checkpoint(name: str) -> CheckpointRef:
    return CheckpointRef(uri=f"checkpoints/{name}.safetensors", sha256=fake_sha(name))


def _sgd_log(steps: int, lr: float) -> OptimizerLog:
    per_step = [[lr] for _ in range(steps)]
    return OptimizerLog(kind="sgd", groups=[ParamGroup(params=["weight", "bias"])],
                        steps=StepLog(lr=per_step, weight_decay=[[0.0]] * steps,
                                      momentum=[[0.9]] * steps, dampening=[[0.0]] * steps))


def make_stage(model: str, version: str, index: int, steps: int = 3) -> Stage:
    prefix = f"{model}@{version}"
    start = f"{model}-base" if index == 0 else f"{prefix}/s{index - 1}/end"
    return Stage(
        id=f"s{index}", kind=STAGE_KINDS[index % len(STAGE_KINDS)],
        started_at=datetime(2026, 10, 1 + index, tzinfo=timezone.utc),
        ended_at=datetime(2026, 10, 2 + index, tzinfo=timezone.utc),
        convention="carry" if index else "reset",
        theta_start=_checkpoint(start), theta_end=_checkpoint(f"{prefix}/s{index}/end"),
        optimizer_start=_checkpoint(f"{prefix}/s{index}/opt-start") if index else None,
        optimizer_end=_checkpoint(f"{prefix}/s{index}/opt-end"),
        optimizer=_sgd_log(steps, 0.1 / (index + 1)),
        datasets=[DatasetRef(name=f"data-{index}", digest=fake_sha(f"data-{index}"),
                             records=100 * (index + 1), tags=["synthetic"])],
        batch_ids=[[t, t + 1] for t in range(steps)],
        code_commit="abc1234", config_hash=f"cfg{index}")


def make_version(model: str = "tiny", version: str = "v1", *, stages: int = 3,
                 created_at: datetime | None = datetime(2026, 11, 1, tzinfo=timezone.utc),
                 description: str = "") -> ModelVersion:
    return ModelVersion(model=model, version=version, created_at=created_at,
                        task="tests.support.tinytask:make_task", parameters=42, description=description,
                        stages=[make_stage(model, version, i) for i in range(stages)])


def make_scores(version: ModelVersion, behaviours: int = 2, *, estimator: str = "sgd-tracin",
                config_hash: str = "cfg0123456789abc", seed: int = 0,
                repeat: int = 1) -> pa.Table:
    """Score rows in the stage_scores contract (without run_id), one per stage x behaviour,
    the whole block repeated ``repeat`` times (for bulk benchmarks)."""
    stages = version.stages
    n = len(stages) * behaviours * repeat
    stage_idx = np.tile(np.arange(len(stages), dtype=np.int32), behaviours * repeat)
    behaviour_idx = np.repeat(np.arange(behaviours * repeat), len(stages)) % behaviours
    rng = np.random.default_rng(seed)
    ids = np.array([s.id for s in stages], dtype=object)
    kinds = np.array([s.kind for s in stages], dtype=object)
    names = np.array([f"behaviour-{b}" for b in range(behaviours)], dtype=object)
    return pa.table({
        "model": pa.array([version.model] * n), "version": pa.array([version.version] * n),
        "stage_index": pa.array(stage_idx), "stage_id": pa.array(ids[stage_idx]),
        "stage_kind": pa.array(kinds[stage_idx]), "behaviour": pa.array(names[behaviour_idx]),
        "direction": pa.array(["harm"] * n), "estimator": pa.array([estimator] * n),
        "estimator_version": pa.array(["1"] * n), "convention": pa.array(["reset"] * n),
        "config_hash": pa.array([config_hash] * n), "effect": rng.normal(size=n),
        "share": rng.random(n), "metric_value": rng.random(n),
    })
