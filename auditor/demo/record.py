"""Train the built-in scenarios stage by stage under the Recorder, as several model versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import torch

from auditor.lineage.models import ModelVersion
from auditor.lineage.recorder import LINEAGE_FILE, Recorder, load_lineage

BATCH = 64


@dataclass(frozen=True)
class StagePlan:
    id: str
    kind: str
    steps: int
    lr: float
    optimizer: str = "sgd"  # sgd | adamw
    fresh_optimizer: bool = True  # False: carry the previous stage's optimizer state
    weight_decay: float = 1e-4
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VersionPlan:
    scenario: ModuleType
    model: str
    version: str
    created_at: datetime
    stages: list[StagePlan]
    description: str = ""


def _optimizer(plan: StagePlan, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if plan.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=plan.lr, weight_decay=plan.weight_decay)
    return torch.optim.SGD(params, lr=plan.lr, momentum=0.9,
                           weight_decay=plan.weight_decay)


def _batches(pool_size: int, steps: int, seed: int, size: int = BATCH) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, pool_size, (size,), generator=gen) for _ in range(steps)]


def record_version(plan: VersionPlan, out_dir: str | Path, seed: int = 0,
                   sketch=None) -> ModelVersion:
    """Train ``plan`` with the Recorder into ``out_dir``; reuse it if already recorded.
    ``sketch``: a ``SketchSpec`` to log the sketched curvature for ``aa-ggn`` projection."""
    out_dir = Path(out_dir)
    if (out_dir / LINEAGE_FILE).is_file():
        return load_lineage(out_dir)
    task = plan.scenario.task()
    torch.manual_seed(seed)
    model = task.build_model()
    recorder = Recorder(out_dir, model, model_name=plan.model, version=plan.version,
                        task=plan.scenario.TASK, seed=seed, created_at=plan.created_at,
                        description=plan.description, sketch=sketch)
    optimizer = None
    for index, stage in enumerate(plan.stages):
        adapted = task.adapt(model, stage.id) if hasattr(task, "adapt") else model
        if adapted is not model:  # the stage adds adapters (a scenario's LoRA stage)
            model, optimizer = adapted, None
        if optimizer is None or stage.fresh_optimizer:
            optimizer = _optimizer(stage, model)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] = stage.lr  # the stage's own cosine schedule
        _train_stage(recorder, task, model, optimizer, stage, plan, seed * 100 + index)
    return recorder.lineage


def _train_stage(recorder, task, model, optimizer, stage: StagePlan, plan: VersionPlan,
                 seed: int) -> None:
    pool = _pool_size(plan.scenario, stage.id)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=stage.steps)
    dataset = plan.scenario.dataset(stage.id, stage.tags)
    adds = getattr(plan.scenario, "ADAPTER_PATTERNS", ())
    with recorder.stage(stage.id, kind=stage.kind, optimizer=optimizer, datasets=[dataset],
                        model=model, adds=adds):
        for ids in _batches(pool, stage.steps, seed, getattr(plan.scenario, "BATCH", BATCH)):
            recorder.batch(ids)
            loss = task.loss(model, task.batch(stage.id, ids))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()


def _pool_size(scenario: ModuleType, stage_id: str) -> int:
    return scenario.dataset(stage_id, []).records


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=timezone.utc)
