"""Per-step optimizer scalars, logged from an optimizer's post-step hook."""

from __future__ import annotations

from typing import Any

import torch

from auditor.errors import LineageError
from auditor.lineage.models import OptimizerKind, ParamGroup, SkippedBatch, StepLog


def optimizer_kind(optimizer: torch.optim.Optimizer) -> OptimizerKind:
    # AdamW subclasses Adam in recent torch: test the most specific class first.
    if isinstance(optimizer, torch.optim.AdamW):
        return "adamw"
    if isinstance(optimizer, torch.optim.Adam):
        return "adam"
    if isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    raise LineageError(
        f"the recorder supports SGD, Adam and AdamW; got {type(optimizer).__name__}")


class StepLogger:
    """Collects one row of hyperparameters per parameter group for every optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, model: torch.nn.Module):
        self.optimizer = optimizer
        self.kind = optimizer_kind(optimizer)
        self.columns: dict[str, list[Any]] = {name: [] for name in self._fields()}
        self.batch_ids: list[list[int]] | None = []
        self.seeds: list[int] | None = []
        self.micro: list[list[int]] = []  # micro-batch sizes of each step (gradient accumulation)
        self._pending_batch: tuple[list[int], int, list[int]] | None = None
        self._pending_clip: tuple[float, float | None] | None = None
        self._clips: list[tuple[float, float | None] | None] = []
        self.skipped = 0  # batches whose optimizer step never came (a GradScaler skipped it)
        self.skipped_batches: list[SkippedBatch] = []  # those batches, where they came

    def _fields(self) -> tuple[str, ...]:
        if self.kind == "sgd":
            return ("lr", "weight_decay", "momentum", "dampening")
        return ("lr", "weight_decay", "beta1", "beta2", "eps", "adam_step")

    def pending(self, ids: list[int], seed: int, micro: list[int] | None = None) -> None:
        """The coming step's batch. A batch still pending had its step skipped (a GradScaler
        skips ``optimizer.step()`` when the gradients hold Inf/NaN): it changed nothing, so it
        is dropped, with any clipping logged for it."""
        if self._pending_batch is not None:
            self._skip()
        self._pending_batch = (ids, seed, micro or [len(ids)])

    def _skip(self) -> None:
        self.skipped += 1
        if self._pending_batch is not None and self.batch_ids is not None:
            ids, seed, micro = self._pending_batch
            clip = self._pending_clip[0] if self._pending_clip else None
            self.skipped_batches.append(SkippedBatch(
                before_step=len(self.batch_ids), ids=ids, seed=seed, max_grad_norm=clip,
                micro_batches=micro if len(micro) > 1 else None))
        self._pending_batch = self._pending_clip = None

    def step_skipped(self) -> None:
        """The optimizer ran but a loss scaler made it skip the update (a fused optimizer given
        ``found_inf``): the pending batch changed nothing."""
        self._skip()

    def clipped(self, max_norm: float, norm: float | None) -> None:
        self._pending_clip = (max_norm, norm)

    def step_done(self) -> tuple[float, float] | None:
        """Log the step just taken; returns its clipping (max norm, norm) if it was clipped."""
        groups = self.optimizer.param_groups
        for name in self.columns:
            self.columns[name].append([self._value(name, g) for g in groups])
        self._take_batch()
        clip, self._pending_clip = self._pending_clip, None
        self._clips.append(clip)
        return clip

    def _take_batch(self) -> None:
        if self._pending_batch is None:
            self.batch_ids = self.seeds = None  # one unlogged step makes the stage unreplayable
            return
        ids, seed, micro = self._pending_batch
        self._pending_batch = None
        if self.batch_ids is not None:
            self.batch_ids.append(ids)
            self.seeds.append(seed)
            self.micro.append(micro)

    def micro_batches(self) -> list[list[int]] | None:
        """Each step's micro-batch sizes, or None when every step was one batch."""
        if self.batch_ids is None or all(len(sizes) == 1 for sizes in self.micro):
            return None
        return self.micro

    def _value(self, name: str, group: dict[str, Any]) -> float | int:
        if name == "beta1":
            return float(group["betas"][0])
        if name == "beta2":
            return float(group["betas"][1])
        if name == "adam_step":
            return _adam_step(self.optimizer, group)
        return float(group[name])

    def finish(self) -> StepLog:
        if self._pending_batch is not None:  # the stage's last batch had its step skipped
            self._skip()
        columns: dict[str, Any] = dict(self.columns)
        if any(self._clips):
            columns["max_grad_norm"] = [c[0] if c else None for c in self._clips]
            columns["grad_norm"] = [c[1] if c else None for c in self._clips]
        if not columns.get("lr"):
            skipped = f" ({self.skipped} skipped by the loss scaler: Inf/NaN gradients)" \
                if self.skipped else ""
            raise LineageError(f"the stage ended without a single optimizer step{skipped}")
        return StepLog(**columns)

    def static_options(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        options: dict[str, Any] = {
            "maximize": bool(group.get("maximize", False)),
            "foreach": group.get("foreach"),
            "fused": group.get("fused") or None,
            "weight_decay_mode": "decoupled" if self.kind == "adamw" else "coupled",
        }
        if self.kind == "sgd":
            options["nesterov"] = bool(group.get("nesterov", False))
        else:
            options["amsgrad"] = bool(group.get("amsgrad", False))
        return options


def _adam_step(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> int:
    for param in group["params"]:
        state = optimizer.state.get(param)
        if state and "step" in state:
            return int(state["step"])
    return 0


def param_groups(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> list[ParamGroup]:
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        params = [names[id(p)] for p in group["params"]]
        frozen = [names[id(p)] for p in group["params"] if not p.requires_grad]
        groups.append(ParamGroup(params=params, frozen=frozen))
    return groups


def frozen_outside(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> list[str] | None:
    """Frozen parameters the optimizer does not hold (None when there are none)."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = [n for n, p in model.named_parameters() if id(p) not in held and not p.requires_grad]
    return names or None
