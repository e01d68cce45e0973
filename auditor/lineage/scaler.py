"""fp16 loss scaling (``torch.amp.GradScaler``): what the Recorder logs of it, and the real
GradScaler replay runs from that log.

A GradScaler multiplies the loss by its scale before ``backward``, divides the gradients by it
(``unscale_``), skips ``optimizer.step()`` when they hold Inf/NaN, and then backs the scale off
(after a skip) or grows it (after ``growth_interval`` steps without one). The lineage keeps its
configuration and state at the stage's start (``LossScaler``) and every batch whose step it
skipped (``SkippedBatch``, where it came): replay seeds a real GradScaler with that state and
runs the skipped batches again in their place, so the scale evolves as it did, bit for bit. The
step log and the estimators see only the steps taken.
"""

from __future__ import annotations

import torch
from pydantic import ValidationError

from auditor.errors import LineageError
from auditor.lineage.models import LossScaler, SkippedBatch, Stage


def scaler_state(scaler: torch.amp.GradScaler | None, stage_id: str) -> LossScaler | None:
    """The scaler's configuration and current state, or None without an enabled scaler;
    a scaler auditor cannot replay is a one-line ``LineageError`` (at the stage's start)."""
    if scaler is None:
        return None
    if not isinstance(scaler, torch.amp.GradScaler):
        raise LineageError(f"stage {stage_id!r}: scaler= must be a torch.amp.GradScaler "
                           f"(got {type(scaler).__name__}); replay cannot repeat another")
    if not scaler.is_enabled():
        return None
    state = scaler.state_dict()
    values = dict(scale=float(state["scale"]), growth_factor=float(state["growth_factor"]),
                  backoff_factor=float(state["backoff_factor"]),
                  growth_interval=int(state["growth_interval"]),
                  growth_tracker=int(state["_growth_tracker"]))
    try:
        return LossScaler(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise LineageError(f"stage {stage_id!r}: the GradScaler's {where or 'state'} cannot be "
                           f"recorded: {error['msg'].removeprefix('Value error, ')}") from None


def with_skipped(scaler: LossScaler | None, skipped: list[SkippedBatch]) -> LossScaler | None:
    if scaler is None:
        return None
    return scaler.model_copy(update={"skipped": list(skipped)})


def found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Inside ``optimizer.step()`` (its post-step hook): did a GradScaler hand this fused
    optimizer an Inf/NaN flag, so that the step changed nothing? (A GradScaler never calls a
    non-fused optimizer's ``step()`` for such a batch.)"""
    flag = getattr(optimizer, "found_inf", None)
    return isinstance(flag, torch.Tensor) and bool(flag.item() != 0)


def replay_scaler(stage: Stage, device: torch.device) -> torch.amp.GradScaler | None:
    """A real GradScaler in the state the stage started with (None without loss scaling)."""
    logged = stage.loss_scaler
    if logged is None:
        return None
    scaler = torch.amp.GradScaler(device.type, init_scale=logged.scale,
                                  growth_factor=logged.growth_factor,
                                  backoff_factor=logged.backoff_factor,
                                  growth_interval=logged.growth_interval)
    scaler.load_state_dict({"scale": logged.scale, "growth_factor": logged.growth_factor,
                            "backoff_factor": logged.backoff_factor,
                            "growth_interval": logged.growth_interval,
                            "_growth_tracker": logged.growth_tracker})
    return scaler


def skipped_before(stage: Stage) -> dict[int, list[SkippedBatch]]:
    """The stage's skipped batches by the logged step they came before."""
    grouped: dict[int, list[SkippedBatch]] = {}
    for batch in stage.loss_scaler.skipped if stage.loss_scaler else ():
        grouped.setdefault(batch.before_step, []).append(batch)
    return grouped
