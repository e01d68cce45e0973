"""Record every ``Trainer.fit()`` call of PyTorch Lightning as a lineage stage.

    from auditor.integrations.lightning import AuditorCallback, RecordedData

    data = RecordedData(train_dataset, collate)             # logs each batch's example ids
    loader = DataLoader(data.dataset, batch_size=16, shuffle=True, collate_fn=data.collate)
    recorder = Recorder("runs/m-v2", module, model_name="m", version="v2", task="pkg:task")
    callback = AuditorCallback(recorder, data, stage="sft", kind="fine-tune")
    Trainer(max_steps=100, callbacks=[callback], ...).fit(module, loader)
    callback.next_stage("vendor-ft", kind="fine-tune")      # the next fit() call's stage

The stage starts in ``on_train_start`` (the Recorder's continuation check runs there, before any
step), torch is seeded before each optimizer step's first ``training_step``, and when the step's
gradients are final (``on_before_optimizer_step``) the ids of its batches (gradient accumulation),
the clipping threshold (``gradient_clip_val``, by norm, over the optimizer's parameters as
Lightning clips) and the precision are logged (``16-mixed``: its GradScaler's start state and
the steps it skipped, which replay repeats with a real GradScaler); the optimizer's post-step
hook logs the hyperparameters every scheduler set. The stage ends in ``on_train_end``.

Replay: the task's ``build_model()`` returns the LightningModule; ``loss(model, batch)`` its
training loss (``LightningTask`` uses ``training_step``). With accumulation, each batch's loss is
divided by the step's number of batches, as Lightning does when the epoch length divides by
``accumulate_grad_batches``. Limits: one device and process, one optimizer (automatic
optimization), ``num_workers=0``, clipping by norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from auditor.errors import InputError, LineageError
from auditor.integrations.batches import RecordedData
from auditor.lineage.models import DatasetRef
from auditor.lineage.recorder import Recorder

try:
    from lightning.pytorch.callbacks import Callback
except ImportError as exc:  # pragma: no cover - the lightning extra is missing
    raise InputError("auditor.integrations.lightning needs the lightning extra: "
                     "pip install 'auditor[lightning]'") from exc

__all__ = ["AuditorCallback", "LightningTask", "RecordedData"]

_AUTOCAST = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}


class AuditorCallback(Callback):
    def __init__(self, recorder: Recorder, data: RecordedData, *, stage: str, kind: str,
                 datasets: Sequence[DatasetRef] = (), **stage_options: Any):
        self.recorder, self.data = recorder, data
        self.next_stage(stage, kind=kind, datasets=datasets, **stage_options)
        self._context = None
        self._batches = 0
        self._clip: float | None = None

    def next_stage(self, stage: str, *, kind: str, datasets: Sequence[DatasetRef] = (),
                   **stage_options: Any) -> None:
        """The stage the next ``fit()`` call records (options as for ``Recorder.stage``)."""
        self._stage = dict(stage_id=stage, kind=kind, datasets=list(datasets), **stage_options)

    def on_train_start(self, trainer, pl_module) -> None:
        if self._stage is None:
            raise LineageError("AuditorCallback: fit() called again without next_stage(...)")
        _check(trainer)
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        optimizer = trainer.optimizers[0]
        optimizer = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer wraps it
        clip = trainer.gradient_clip_val
        self._clip = float(clip) if clip else None
        options = dict(self._stage)
        options.setdefault("autocast", _AUTOCAST.get(str(trainer.precision)))
        options.setdefault("scaler", scaler if scaler is not None and scaler.is_enabled() else None)
        self._context = self.recorder.stage(optimizer=optimizer, model=pl_module, **options)
        self._context.__enter__()  # the continuation check: fails here, before any step
        self._stage = None
        self._batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._batches == 0:
            self.recorder.seed_step()  # before the step's first forward pass (dropout)
        self._batches += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        ids, sizes = self.data.take(self._batches)
        self._batches = 0
        self.recorder.batch(ids, micro_batches=sizes)
        if self._clip is not None:
            self.recorder.clipped(self._clip, over="optimizer")

    def on_train_end(self, trainer, pl_module) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(None, None, None)


def _check(trainer) -> None:
    if trainer.world_size > 1 or len(trainer.optimizers) != 1:
        raise LineageError("AuditorCallback records one process with one optimizer")
    if trainer.gradient_clip_val and trainer.gradient_clip_algorithm not in (None, "norm"):
        raise LineageError("AuditorCallback replays clipping by norm only "
                           "(gradient_clip_algorithm='norm')")
    if str(trainer.precision) not in ("32-true", "32", "bf16-mixed", "16-mixed"):
        raise LineageError(f"AuditorCallback cannot replay precision {trainer.precision!r}")


class LightningTask:
    """A ``TrainingTask`` over a LightningModule: subclass with ``build_model()`` (the module)
    and ``batch(stage_id, ids)``; the loss is the module's ``training_step``."""

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def batch(self, stage_id: str, ids):
        raise NotImplementedError

    def loss(self, model, batch, reduction="mean"):
        output = model.training_step(batch, 0)
        return output["loss"] if isinstance(output, dict) else output
