"""Small recorded training runs shared by tests (real torch training, real checkpoints)."""

from __future__ import annotations

import torch

from auditor import Recorder
from auditor.lineage.models import DatasetRef
from tests.support.tinytask import TinyTask

DATA = [DatasetRef(name="tiny", digest="0" * 64, records=64, tags=["synthetic"])]


def _batches(steps: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(64, generator=gen)[:8] for _ in range(steps)]


def _train(rec, task, model, opt, sched, steps, seed, clip=None):
    for ids in _batches(steps, seed):
        rec.batch(ids)
        loss = task.loss(model, task.batch("", ids))
        opt.zero_grad()
        loss.backward()
        if clip:
            rec.clip_grad_norm_(clip)
        opt.step()
        if sched:
            sched.step()


def train_amp(rec, task, model, opt, scaler, batches, poisoned, clip=None):
    """A mixed-precision loop whose ``poisoned`` steps overflow (the GradScaler skips them)."""
    for step, ids in enumerate(batches):
        rec.batch(ids)
        loss = task.loss(model, task.batch("", ids))
        if step in poisoned:
            loss = loss * float("inf")
        opt.zero_grad()
        scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            rec.clip_grad_norm_(clip)
        scaler.step(opt)
        scaler.update()


def record_sgd(tmp_path, sketch=None):
    task = TinyTask()
    torch.manual_seed(1)
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny", version="v1",
                   task="tests.support.tinytask:tiny_task", seed=7, sketch=sketch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    with rec.stage("pretrain", kind="pretrain", optimizer=opt, datasets=DATA):
        _train(rec, task, model, opt, sched, 7, 0)
    with rec.stage("finetune", kind="fine-tune", optimizer=opt, datasets=DATA):  # carry
        _train(rec, task, model, opt, sched, 5, 1)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5, nesterov=True)
    with rec.stage("polish", kind="alignment", optimizer=opt2):  # reset
        _train(rec, task, model, opt2, None, 4, 2)
    return task, rec


def record_adamw(tmp_path):
    task = TinyTask(dropout=0.3)
    torch.manual_seed(2)
    model = task.build_model()
    model[0].bias.requires_grad_(False)  # a frozen parameter
    decay = [model[0].weight, model[3].weight]
    no_decay = [model[0].bias, model[3].bias]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0, "lr": 3e-3}], lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)
    rec = Recorder(tmp_path, model, model_name="tiny", version="v2", task="tests.support.tinytask:tiny_task")
    with rec.stage("pretrain", kind="pretrain", optimizer=opt):
        _train(rec, task, model, opt, sched, 6, 3, clip=0.5)
    with rec.stage("sft", kind="fine-tune", optimizer=opt):
        _train(rec, task, model, opt, sched, 6, 4, clip=0.5)
    return task, rec
