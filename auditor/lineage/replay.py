"""Re-run a recorded stage step by step, exactly as it was trained.

``run_stage`` rebuilds a real torch optimizer of the logged kind over the logged parameter groups,
sets each step's logged hyperparameters, seeds torch with the logged per-step seed, fetches the
logged batch from the task, and applies the same clipping. On CPU the result is bitwise equal to
the recorded end checkpoint; this is what the exact ``replay`` estimator and the curvature-aware
estimators (which need the factual trajectory θ_t) stand on. It runs wherever ``model`` and
``task`` put it: CPU unless an estimator was given a CUDA ``device`` (CUDA replay is not bitwise).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from auditor.errors import EstimatorError
from auditor.lineage.checkpoints import Tensors, optimizer_state, restore_optimizer_state
from auditor.lineage.models import OptimizerLog, Stage, StepLog
from auditor.task import TrainingTask

BeforeStep = Callable[[int, torch.nn.Module, Any], None]
AfterStep = Callable[[int, torch.nn.Module, torch.optim.Optimizer], None]


def seed_step(seed: int) -> None:
    """Seed torch's RNG for one training step (CPU generator, and CUDA's once it is in use)."""
    torch.random.default_generator.manual_seed(seed)  # ~1 µs; torch.manual_seed costs ~75 µs
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def build_optimizer(model: torch.nn.Module, log: OptimizerLog) -> torch.optim.Optimizer:
    """A fresh optimizer of the logged kind, with the logged groups and step-0 hyperparameters."""
    params = dict(model.named_parameters())
    groups = []
    for index, group in enumerate(log.groups):
        missing = [n for n in group.params if n not in params]
        if missing:
            raise EstimatorError(f"optimizer group {index} names unknown parameters {missing[:3]}")
        groups.append({"params": [params[n] for n in group.params]})
    options: dict[str, Any] = {"maximize": log.maximize}
    if log.foreach is not None:
        options["foreach"] = log.foreach
    if log.fused:
        options["fused"] = True
    if log.kind == "sgd":
        optimizer = torch.optim.SGD(groups, lr=1.0, nesterov=False, **options)
    elif log.kind == "adam":
        optimizer = torch.optim.Adam(groups, lr=1.0, **options)
    else:
        optimizer = torch.optim.AdamW(groups, lr=1.0, **options)
    set_step_hyperparameters(optimizer, log, 0)
    return optimizer


def set_step_hyperparameters(optimizer: torch.optim.Optimizer, log: OptimizerLog, t: int) -> None:
    steps: StepLog = log.steps
    for g, group in enumerate(optimizer.param_groups):
        group["lr"] = steps.lr[t][g]
        group["weight_decay"] = steps.weight_decay[t][g]
        if log.kind == "sgd":
            group["momentum"] = steps.momentum[t][g]
            group["dampening"] = steps.dampening[t][g] if steps.dampening else 0.0
            group["nesterov"] = log.nesterov
        else:
            group["betas"] = (steps.beta1[t][g], steps.beta2[t][g])
            group["eps"] = steps.eps[t][g]


def set_trainable(model: torch.nn.Module, log: OptimizerLog) -> None:
    """Restore which parameters were frozen during the stage."""
    frozen = {name for group in log.groups for name in group.frozen}
    frozen.update(log.frozen_outside or ())
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)


def run_stage(model: torch.nn.Module, task: TrainingTask, stage: Stage,
              optimizer_state_in: Tensors | None = None, *,
              before_step: BeforeStep | None = None,
              after_step: AfterStep | None = None) -> Tensors:
    """Apply ``stage``'s logged steps to ``model`` in place; return the end optimizer state."""
    if stage.batch_ids is None:
        raise EstimatorError(f"stage {stage.id!r} cannot be replayed: its batch ids were not recorded")
    log = stage.optimizer
    set_trainable(model, log)
    model.train()
    optimizer = build_optimizer(model, log)
    if optimizer_state_in:
        restore_optimizer_state(optimizer, model, optimizer_state_in)
    for t in range(stage.steps):
        _one_step(model, task, stage, optimizer, t, before_step)
        if after_step is not None:
            after_step(t, model, optimizer)
    return optimizer_state(optimizer, model)


def _autocast(stage: Stage, model: torch.nn.Module):
    if stage.autocast is None:
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device_type=device, dtype=getattr(torch, stage.autocast))


def micro_batches(task: TrainingTask, stage: Stage, t: int) -> list[Any]:
    """Step ``t``'s micro-batches (gradient accumulation), as the task builds them."""
    ids, batches, start = stage.batch_ids[t], [], 0
    for size in stage.micro_batches[t]:
        batches.append(task.batch(stage.id, ids[start:start + size]))
        start += size
    return batches


def _accumulate(model: torch.nn.Module, task: TrainingTask, stage: Stage, t: int) -> None:
    """One step's gradient accumulated over its micro-batches, forward and backward in turn.

    A task that scales its micro-batch losses itself (the Hugging Face Trainer divides by the
    step's token count) defines ``micro_loss(model, batches, i)``; otherwise each micro-batch's
    mean loss is divided by the number of micro-batches.
    """
    batches = micro_batches(task, stage, t)
    custom = getattr(task, "micro_loss", None)
    for i, batch in enumerate(batches):
        with _autocast(stage, model):
            loss = custom(model, batches, i) if custom else task.loss(model, batch) / len(batches)
        loss.backward()


def _one_step(model: torch.nn.Module, task: TrainingTask, stage: Stage,
              optimizer: torch.optim.Optimizer, t: int, before_step: BeforeStep | None) -> None:
    log = stage.optimizer
    set_step_hyperparameters(optimizer, log, t)
    if stage.rng_seeds is not None:
        seed_step(stage.rng_seeds[t])
    optimizer.zero_grad(set_to_none=True)
    if stage.micro_batches is None:
        batch = task.batch(stage.id, stage.batch_ids[t])
        if before_step is not None:
            before_step(t, model, batch)
        with _autocast(stage, model):
            loss = task.loss(model, batch)
        loss.backward()
    else:
        _accumulate(model, task, stage, t)
    max_norm = log.steps.max_grad_norm[t] if log.steps.max_grad_norm else None
    if max_norm is not None:
        if log.clip_over == "optimizer":
            params = [p for group in optimizer.param_groups for p in group["params"]]
        else:
            params = list(model.parameters())
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
