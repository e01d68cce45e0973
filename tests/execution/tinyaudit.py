"""Small recorded model versions of the tiny task, and behaviours for them (importable by Ray
workers: the conftest puts this folder and tests/ on PYTHONPATH)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import torch

from auditor import Recorder
from auditor.behaviours.library import harmful_output_rate, probe_loss
from auditor.lineage.models import DatasetRef, ModelVersion
from tests.support.tinytask import TinyTask

DATA = [DatasetRef(name="tiny", digest="0" * 64, records=64, tags=["synthetic"])]
Q4_START = datetime(2026, 10, 2, 12, 0, tzinfo=timezone.utc)


def behaviours():
    task = TinyTask()
    return [probe_loss("probe-loss", task.x[:16], task.y[:16]),
            harmful_output_rate("class0-rate", task.x[16:32], 0)]


def record_tiny(folder: str | Path, index: int, steps: int = 4) -> ModelVersion:
    """Version v{index} of model "tiny": three SGD stages, a few steps each."""
    task = TinyTask()
    torch.manual_seed(index)
    model = task.build_model()
    rec = Recorder(folder, model, model_name="tiny", version=f"v{index:03d}",
                   task="tests.support.tinytask:tiny_task", seed=index,
                   created_at=Q4_START + timedelta(hours=index))
    gen = torch.Generator().manual_seed(index)
    for stage, kind, lr in (("pretrain", "pretrain", 0.2), ("finetune", "fine-tune", 0.1),
                            ("align", "alignment", 0.05)):
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        with rec.stage(stage, kind=kind, optimizer=opt, datasets=DATA):
            for _ in range(steps):
                ids = torch.randperm(64, generator=gen)[:8]
                rec.batch(ids)
                loss = task.loss(model, task.batch(stage, ids))
                opt.zero_grad()
                loss.backward()
                opt.step()
    return rec.lineage


def record_many(base: str | Path, count: int, db: str | Path) -> list[str]:
    """Record ``count`` versions under ``base`` and add them to the store ``db``."""
    from auditor.api import add_version

    keys = []
    for index in range(count):
        folder = Path(base) / f"v{index:03d}"
        version = record_tiny(folder, index)
        add_version(version, folder, db=db)
        keys.append(version.key)
    return keys


def spec_dict(period: str = "2026-Q4", estimator: str = "naive", **executor) -> dict:
    return {"name": "tiny audit", "versions": {"period": period},
            "behaviours": {"tiny": "tinyaudit:behaviours"}, "estimators": [estimator],
            "executor": executor or {"kind": "local"}}


def other():
    """A second behaviour set."""
    task = TinyTask()
    return [probe_loss("tail-loss", task.x[32:], task.y[32:])]


def broken_behaviours():
    """Behaviours whose loading fails in the worker (each work item fails)."""
    raise RuntimeError("the probe set is unavailable")
