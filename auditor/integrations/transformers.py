"""Record every ``Trainer.train()`` call of Hugging Face transformers as a lineage stage.

    from auditor.integrations.transformers import AuditorCallback, RecordedData

    data = RecordedData(train_dataset, collator)           # logs each micro-batch's example ids
    recorder = Recorder("runs/lm-v2", model, model_name="lm", version="v2", task="pkg:task")
    callback = AuditorCallback(recorder, data, stage="sft", kind="fine-tune")
    trainer = Trainer(model=model, args=args, train_dataset=data.dataset,
                      data_collator=data.collate, callbacks=[callback])
    trainer.train()                                        # one stage
    callback.next_stage("vendor-ft", kind="fine-tune")     # the next train() call's stage

The callback starts the stage in ``on_train_begin`` (the Recorder's continuation check runs
there, before any step: a model that peft changed passes ``adds=["*lora_*"]``), seeds torch before
each step's first forward pass, and when the step's gradients are final (``on_pre_optimizer_step``)
logs the ids of its micro-batches (gradient accumulation), the clipping threshold
(``max_grad_norm``) and, through the optimizer's post-step hook, the hyperparameters every
scheduler set. Mixed precision is recorded as the autocast dtype accelerate really uses (bf16;
fp16 with accelerate's loss scaler, whose start state and skipped steps the Recorder logs; fp16
on the CPU, which accelerate runs in fp32 without a scaler, is recorded as fp32). The stage ends
with ``on_train_end``. The callback imports nothing of auditor but the Recorder.

Replay needs a task that rebuilds each micro-batch and computes the loss as ``Trainer`` does:
subclass ``TrainerTask``. Limits: one process (no DDP), ``dataloader_num_workers=0``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from auditor.errors import InputError, LineageError
from auditor.integrations.batches import RecordedData, count_forwards
from auditor.lineage.models import DatasetRef
from auditor.lineage.recorder import Recorder

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - the hf extra is missing
    raise InputError("auditor.integrations.transformers needs the hf extra: "
                     "pip install 'auditor[hf]'") from exc

__all__ = ["AuditorCallback", "RecordedData", "TrainerTask"]


class AuditorCallback(TrainerCallback):
    def __init__(self, recorder: Recorder, data: RecordedData, *, stage: str, kind: str,
                 datasets: Sequence[DatasetRef] = (), **stage_options: Any):
        self.recorder, self.data = recorder, data
        self.next_stage(stage, kind=kind, datasets=datasets, **stage_options)
        self._context = None
        self._hook = None
        self._forwards = [0]
        self._clip: float | None = None

    def next_stage(self, stage: str, *, kind: str, datasets: Sequence[DatasetRef] = (),
                   **stage_options: Any) -> None:
        """The stage the next ``train()`` call records (options as for ``Recorder.stage``:
        ``adds=``, ``notes=``, ...)."""
        self._stage = dict(stage_id=stage, kind=kind, datasets=list(datasets), **stage_options)

    # -- Trainer events -----------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self._stage is None:
            raise LineageError("AuditorCallback: train() called again without next_stage(...)")
        _check_args(args)
        if optimizer is None or model is None:
            raise LineageError("AuditorCallback: the Trainer passed no model or optimizer")
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimizer
        scaler = _enabled(getattr(optimizer, "scaler", None))
        self.data.reset()
        self._clip = float(args.max_grad_norm) if args.max_grad_norm else None
        options = dict(self._stage)
        # what accelerate runs: bf16 autocasts; fp16 autocasts under a loss scaler (its native
        # amp), and without one (on the CPU accelerate ignores fp16) trains in fp32
        options.setdefault("autocast", "bfloat16" if args.bf16 else
                           "float16" if args.fp16 and scaler is not None else None)
        options.setdefault("scaler", scaler)
        self._context = self.recorder.stage(optimizer=inner, model=model, **options)
        self._context.__enter__()  # the continuation check: fails here, before any step
        self._stage = None
        self._forwards[0] = 0
        self._hook = count_forwards(model, self._forwards)

    def on_step_begin(self, args, state, control, **kwargs):
        self._forwards[0] = 0
        self.recorder.seed_step()  # before the step's first forward pass (dropout)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        ids, sizes = self.data.take(self._forwards[0])
        self.recorder.batch(ids, micro_batches=sizes)
        if self._clip is not None:
            self.recorder.clipped(self._clip)

    def on_train_end(self, args, state, control, **kwargs):
        self._close(None)

    def _close(self, error: BaseException | None) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        context, self._context = self._context, None
        if context is not None:
            if error is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(type(error), error, error.__traceback__)


def _enabled(scaler):
    """accelerate's GradScaler when it scales (fp16 on an accelerator), else None."""
    return scaler if scaler is not None and scaler.is_enabled() else None


def _check_args(args) -> None:
    if getattr(args, "world_size", 1) > 1 or getattr(args, "n_gpu", 1) > 1:
        raise LineageError("AuditorCallback records single-process training only")
    if args.dataloader_num_workers:
        raise LineageError("AuditorCallback needs dataloader_num_workers=0 (example ids are "
                           "noted where examples are fetched)")


class TrainerTask:
    """A ``TrainingTask`` whose loss is the Trainer's: subclass with ``build_model()`` and
    ``dataset(stage_id)`` (the same examples the stage trained on); ``collator`` defaults to
    transformers' ``default_data_collator``. ``adapt(model, stage_id)`` repeats a stage's
    model change (peft) on replay."""

    collator = None

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def dataset(self, stage_id: str):
        raise NotImplementedError

    def batch(self, stage_id: str, ids) -> dict:
        data = self.dataset(stage_id)
        collate = self.collator or transformers.default_data_collator
        return collate([data[int(i)] for i in ids])

    def loss(self, model, batch, reduction="mean"):
        if reduction == "mean":
            return _output_loss(model(**batch))
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        labels = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none")
        counts = labels.ne(-100).sum(-1).clamp(min=1)
        return losses.sum(-1) / counts

    def micro_loss(self, model, batches: list[dict], i: int) -> torch.Tensor:
        """Micro-batch ``i``'s share of the step's loss, scaled as the Trainer scales it."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if _accepts_loss_kwargs(base) and "labels" in batches[0]:
            shifts = _shifts_labels(base)
            count = sum((b["labels"][..., 1:] if shifts else b["labels"]).ne(-100).sum()
                        for b in batches)
            items = count / 1  # the Trainer divides by its parallel sizes (1 here)
            return _output_loss(model(**batches[i], num_items_in_batch=items))
        return _output_loss(model(**batches[i])) / len(batches)


def _output_loss(outputs) -> torch.Tensor:
    return outputs["loss"] if isinstance(outputs, dict) else outputs[0]


def _accepts_loss_kwargs(model) -> bool:
    if hasattr(model, "accepts_loss_kwargs"):
        return bool(model.accepts_loss_kwargs)
    params = inspect.signature(model.forward).parameters.values()
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)


def _shifts_labels(model) -> bool:
    from transformers.loss.loss_utils import LOSS_MAPPING, ForCausalLMLoss

    config = getattr(model, "config", None)
    return LOSS_MAPPING.get(getattr(model, "loss_type", None)) is ForCausalLMLoss and not \
        getattr(config, "is_encoder_decoder", False)
