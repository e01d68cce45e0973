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
from typing import Any, NamedTuple

import torch

from auditor.errors import EstimatorError
from auditor.lineage.checkpoints import Tensors, optimizer_state, restore_optimizer_state
from auditor.lineage.models import OptimizerLog, SkippedBatch, Stage, StepLog
from auditor.lineage.scaler import replay_scaler, skipped_before
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
    """Apply ``stage``'s logged steps to ``model`` in place; return the end optimizer state.

    Under fp16 loss scaling (``stage.loss_scaler``) a real GradScaler, seeded with the logged
    state, scales every loss, unscales before clipping and skips steps whose gradients hold
    Inf/NaN; the batches it skipped while training run again in their place (the hooks see
    only the logged steps)."""
    if stage.batch_ids is None:
        raise EstimatorError(f"stage {stage.id!r} cannot be replayed: its batch ids were not recorded")
    log = stage.optimizer
    set_trainable(model, log)
    model.train()
    optimizer = build_optimizer(model, log)
    if optimizer_state_in:
        restore_optimizer_state(optimizer, model, optimizer_state_in)
    scaler = replay_scaler(stage, _device(model))
    skipped = skipped_before(stage)
    for t in range(stage.steps):
        for batch in skipped.get(t, ()):
            _one_step(model, task, stage, optimizer, t, _skipped(stage, batch), None, scaler)
        _one_step(model, task, stage, optimizer, t, _logged(stage, t), before_step, scaler)
        if after_step is not None:
            after_step(t, model, optimizer)
    last = stage.steps - 1
    for batch in skipped.get(stage.steps, ()):  # skipped after the last step taken
        _one_step(model, task, stage, optimizer, last, _skipped(stage, batch), None, scaler)
    return optimizer_state(optimizer, model)


class _Batch(NamedTuple):
    """One optimizer step's inputs: example ids, seed, micro-batch sizes, clip threshold."""
    ids: list[int]
    seed: int | None
    micro: list[int] | None
    max_norm: float | None


def _logged(stage: Stage, t: int) -> _Batch:
    steps = stage.optimizer.steps
    return _Batch(stage.batch_ids[t], stage.rng_seeds[t] if stage.rng_seeds is not None else None,
                  stage.micro_batches[t] if stage.micro_batches is not None else None,
                  steps.max_grad_norm[t] if steps.max_grad_norm else None)


def _skipped(stage: Stage, batch: SkippedBatch) -> _Batch:
    micro = batch.micro_batches
    if micro is None and stage.micro_batches is not None:  # one micro-batch, as a logged step
        micro = [len(batch.ids)]
    return _Batch(batch.ids, batch.seed, micro, batch.max_grad_norm)


def _device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _autocast(stage: Stage, model: torch.nn.Module):
    if stage.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device(model).type, dtype=getattr(torch, stage.autocast))


def micro_batches(task: TrainingTask, stage: Stage, t: int) -> list[Any]:
    """Step ``t``'s micro-batches (gradient accumulation), as the task builds them."""
    return _micro(task, stage.id, stage.batch_ids[t], stage.micro_batches[t])


def _micro(task: TrainingTask, stage_id: str, ids: list[int], sizes: list[int]) -> list[Any]:
    batches, start = [], 0
    for size in sizes:
        batches.append(task.batch(stage_id, ids[start:start + size]))
        start += size
    return batches


def _backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


def _accumulate(model: torch.nn.Module, task: TrainingTask, stage: Stage, step: _Batch,
                scaler: torch.amp.GradScaler | None) -> None:
    """One step's gradient accumulated over its micro-batches, forward and backward in turn.

    A task that scales its micro-batch losses itself (the Hugging Face Trainer divides by the
    step's token count) defines ``micro_loss(model, batches, i)``; otherwise each micro-batch's
    mean loss is divided by the number of micro-batches.
    """
    batches = _micro(task, stage.id, step.ids, step.micro)
    custom = getattr(task, "micro_loss", None)
    for i, batch in enumerate(batches):
        with _autocast(stage, model):
            loss = custom(model, batches, i) if custom else task.loss(model, batch) / len(batches)
        _backward(loss, scaler)


def _one_step(model: torch.nn.Module, task: TrainingTask, stage: Stage,
              optimizer: torch.optim.Optimizer, t: int, step: _Batch,
              before_step: BeforeStep | None, scaler: torch.amp.GradScaler | None) -> None:
    log = stage.optimizer
    set_step_hyperparameters(optimizer, log, t)
    if step.seed is not None:
        seed_step(step.seed)
    optimizer.zero_grad(set_to_none=True)
    if step.micro is None:
        batch = task.batch(stage.id, step.ids)
        if before_step is not None:
            before_step(t, model, batch)
        with _autocast(stage, model):
            loss = task.loss(model, batch)
        _backward(loss, scaler)
    else:
        _accumulate(model, task, stage, step, scaler)
    if step.max_norm is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)  # as every loop does before clipping
        if log.clip_over == "optimizer":
            params = [p for group in optimizer.param_groups for p in group["params"]]
        else:
            params = list(model.parameters())
        torch.nn.utils.clip_grad_norm_(params, step.max_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)  # unscales unless done above; skips on Inf/NaN gradients
        scaler.update()
