"""Record a model's lineage from inside its training loop.

    recorder = Recorder("runs/digits-v2", model, model_name="digits", version="v2",
                        task="my_pkg.tasks:digits_task")
    with recorder.stage("sft", kind="fine-tune", optimizer=opt, datasets=[...]):
        for ids in batches:
            recorder.batch(ids)            # logs the batch ids, seeds torch for this step
            loss = loss_fn(model, ids)
            opt.zero_grad(); loss.backward()
            recorder.clip_grad_norm_(1.0)  # optional: clipping that replay can reproduce
            opt.step(); scheduler.step()
    recorder.lineage  # the ModelVersion, also written to runs/digits-v2/lineage.json

At each stage boundary the model (and optimizer) state is written as safetensors named by its
sha256. A post-step hook on the optimizer logs every parameter group's hyperparameters as they
were used by that step, whatever scheduler set them.

Opt-in, ``sketch=SketchSpec(dim, samples, seed)`` (needs ``task``): every step after the first
stage also logs its sampled, count-sketched Gauss–Newton factors (auditor.lineage.sketching),
so that ``aa-ggn`` with ``projection=dim`` never re-runs a step. It costs one forward and
``samples`` backward passes per step.

Each stage after the first is checked when it *starts* (auditor.lineage.continuation): the model
must hold the tensors the previous stage ended with, or declare its change — a stage that adds
LoRA adapters passes the adapted model and the adapters' names:

    peft_model = get_peft_model(model, LoraConfig(...))
    with recorder.stage("vendor-lora", kind="fine-tune", optimizer=opt, model=peft_model,
                        adds=["*lora_*"]):

An undeclared difference is a one-line ``LineageError`` before the first step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from pydantic import ValidationError

from auditor.errors import LineageError
from auditor.hashing import config_hash
from auditor.identifiers import identifier, label
from auditor.lineage.checkpoints import (
    first_nonfinite,
    model_state,
    optimizer_state,
    save_tensors,
)
from auditor.lineage.continuation import Snapshot, check_continuation
from auditor.lineage.io import LINEAGE_FILE, read_lineage_json, write_lineage_json
from auditor.lineage.models import (
    CheckpointRef,
    Convention,
    CurvatureSketch,
    DatasetRef,
    ModelVersion,
    OptimizerLog,
    Stage,
    StepLog,
)
from auditor.lineage.replay import seed_step
from auditor.lineage.scaler import found_inf, scaler_state, with_skipped
from auditor.lineage.steplog import StepLogger, frozen_outside, optimizer_kind, param_groups
from auditor.outputs import unique_parameters

if TYPE_CHECKING:
    from auditor.lineage.sketching.spec import SketchSpec

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, out_dir: str | Path, model: torch.nn.Module, *, model_name: str,
                 version: str, task: str | None = None, seed: int = 0,
                 description: str = "", parent: str | None = None,
                 code_commit: str | None = None, created_at: datetime | None = None,
                 sketch: SketchSpec | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self._seed = seed
        self._global_step = 0
        self._stages: list[Stage] = []
        self._active: _ActiveStage | None = None
        self._end: Snapshot | None = None  # the last stage's end state (continuation check)
        self._seeded_step: int | None = None
        self._header = dict(model=_checked(identifier, model_name, "model name"),
                            version=_checked(identifier, version, "version"), task=task,
                            description=description, parent=parent,
                            created_at=created_at or datetime.now(timezone.utc))
        self._code_commit = code_commit
        self._sketch = None
        if sketch is not None:
            if task is None:
                raise LineageError("sketch= needs task= (the factors are the task's loss "
                                   "curvature)")
            from auditor.lineage.sketching.log import SketchLog
            from auditor.task import load_task

            self._sketch = SketchLog(sketch, load_task(task), model)

    # -- the training loop's calls ----------------------------------------------------------

    @contextmanager
    def stage(self, stage_id: str, *, kind: str, optimizer: torch.optim.Optimizer,
              datasets: Sequence[DatasetRef] = (), convention: Convention | None = None,
              notes: str | None = None, model: torch.nn.Module | None = None,
              adds: Sequence[str] = (), removes: Sequence[str] = (),
              recomputes: Sequence[str] = (), adapter: str | None = None,
              autocast: Literal["bfloat16", "float16"] | None = None,
              scaler: torch.amp.GradScaler | None = None) -> Iterator[Recorder]:
        """Record one stage. ``model``: the model trained from now on when the stage changes it
        (e.g. a peft model); ``adds``/``removes``/``recomputes``: name patterns (fnmatch) of the
        tensors that the change adds, drops, or computes (a merge); ``autocast``: the dtype of
        the forward passes under mixed precision (replay repeats it); ``scaler``: the loop's
        ``torch.amp.GradScaler`` (fp16): its state now and the steps it skips are recorded,
        and replay scales, unscales and skips as it did."""
        stage_id = _checked(identifier, stage_id, "stage id")
        kind = _checked(label, kind, "stage kind")
        if self._active is not None:
            raise LineageError(f"stage {stage_id!r} started inside stage {self._active.id!r}")
        if any(s.id == stage_id for s in self._stages):
            raise LineageError(f"stage id {stage_id!r} is already recorded")
        loss_scaler = scaler_state(scaler, stage_id)  # refused here, before any step
        candidate = self.model if model is None else model
        changes = None
        if self._end is not None:
            changes = check_continuation(self._end, candidate, stage_id, adds=adds,
                                         removes=removes, recomputes=recomputes, adapter=adapter)
        self.model = candidate
        # a stage starts without gradients (replay does): a frozen parameter's stale gradient
        # from the previous stage would otherwise count in this stage's clipping norm
        self.model.zero_grad(set_to_none=True)
        self._active = self._begin(stage_id, kind, optimizer, list(datasets), convention, notes)
        self._active.changes, self._active.autocast = changes, autocast
        self._active.loss_scaler = loss_scaler
        self._active.clip_over = None
        try:
            yield self
        except BaseException:
            self._active.handle.remove()
            self._active = None
            raise
        self._finish()

    def seed_step(self) -> int:
        """Seed torch's RNG for the coming step (``batch`` does it when not done already)."""
        self._require_active("seed_step")
        seed = (self._seed * 1_000_003 + self._global_step) % (2**63)
        seed_step(seed)
        self._seeded_step = self._global_step
        return seed

    def batch(self, ids: Sequence[int] | torch.Tensor, *,
              micro_batches: Sequence[int] | None = None) -> None:
        """Log the example ids of the coming step and seed torch's RNG for it (unless
        ``seed_step`` already did, before the step's first forward pass). ``micro_batches``:
        the sizes of the step's gradient-accumulation micro-batches, in order."""
        active = self._require_active("batch")
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        seed = (self._seed * 1_000_003 + self._global_step) % (2**63)
        if self._seeded_step != self._global_step:
            seed_step(seed)
        ids = list(map(int, ids))
        micro = list(map(int, micro_batches)) if micro_batches is not None else None
        if micro is not None and (sum(micro) != len(ids) or min(micro, default=0) < 1):
            raise LineageError(f"micro_batches {micro} do not split a batch of {len(ids)} ids")
        active.logger.pending(ids, seed, micro)
        if active.sketch is not None:
            active.sketch.batch(active.id, list(map(int, ids)), seed, self._global_step)

    def clip_grad_norm_(self, max_norm: float) -> float:
        """Clip the model's gradients like ``torch.nn.utils.clip_grad_norm_`` and log it."""
        active = self._require_active("clip_grad_norm_")
        norm = torch.nn.utils.clip_grad_norm_(list(self.model.parameters()), max_norm)
        active.logger.clipped(float(max_norm), float(norm))
        return float(norm)

    def clipped(self, max_norm: float, norm: float | None = None, *,
                over: Literal["model", "optimizer"] = "model") -> None:
        """Log that the coming step's gradients were clipped (by a framework's own loop) to
        ``max_norm``; ``norm``: their total norm before clipping, when known; ``over``: the
        parameters the norm ran over (``model.parameters()`` or the optimizer's groups)."""
        active = self._require_active("clipped")
        active.clip_over = None if over == "model" else over
        active.logger.clipped(float(max_norm), None if norm is None else float(norm))

    @property
    def lineage(self) -> ModelVersion:
        if not self._stages:
            raise LineageError("no stage has been recorded yet")
        trainable = unique_parameters(self.model)  # a tied weight counts once
        try:
            return ModelVersion(**self._header, parameters=trainable, stages=list(self._stages))
        except ValidationError as exc:
            raise LineageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None

    # -- stage boundaries -------------------------------------------------------------------

    def _begin(self, stage_id, kind, optimizer, datasets, convention, notes) -> _ActiveStage:
        carried = bool(optimizer.state)
        convention = convention or ("carry" if carried else "reset")
        if convention == "reset" and carried:
            raise LineageError(f"stage {stage_id!r}: convention reset, but the optimizer has state")
        opt_start = self._save_optimizer(optimizer, stage_id) if convention == "carry" else None
        logger = StepLogger(optimizer, self.model)
        handle = optimizer.register_step_post_hook(lambda opt, args, kwargs: self._after_step(opt))
        return _ActiveStage(
            sketch=self._sketch_log(convention) if self._stages else None,  # stage 1's: unused
            id=stage_id, kind=kind, optimizer=optimizer, datasets=datasets,
            convention=convention, notes=notes, logger=logger, handle=handle,
            theta_start=self._save_model(stage_id), optimizer_start=opt_start, diverging=False,
            started_at=datetime.now(timezone.utc))

    def _after_step(self, optimizer: torch.optim.Optimizer) -> None:
        active = self._active
        if found_inf(optimizer):  # a fused optimizer ran, but the scaler made it skip
            active.logger.step_skipped()
            return
        clip = active.logger.step_done()
        if active.sketch is not None:
            active.sketch.step_done()
        # a step taken with a non-finite gradient (one a GradScaler skipped is no warning)
        if clip is not None and clip[1] is not None and not math.isfinite(clip[1]) \
                and not active.diverging:
            active.diverging = True
            log.warning("stage %r, step %d: the gradient norm is %s; training is diverging",
                        active.id, self._global_step, clip[1])
        self._global_step += 1

    def _finish(self) -> None:
        active, self._active = self._active, None
        active.handle.remove()
        steps = active.logger.finish()
        if active.logger.skipped:
            log.info("stage %r: %d batch(es) had their optimizer step skipped (Inf/NaN "
                     "gradients under a GradScaler); they changed nothing and are not logged "
                     "as steps%s", active.id, active.logger.skipped,
                     "" if active.loss_scaler else " (pass scaler= to recorder.stage so that "
                     "replay repeats the loss scaling)")
        optimizer_log = OptimizerLog(kind=optimizer_kind(active.optimizer), steps=steps,
                                     groups=param_groups(active.optimizer, self.model),
                                     frozen_outside=frozen_outside(active.optimizer, self.model),
                                     clip_over=active.clip_over,
                                     **active.logger.static_options())
        stage = Stage(
            id=active.id, kind=active.kind, convention=active.convention,
            started_at=active.started_at, ended_at=datetime.now(timezone.utc),
            theta_start=active.theta_start, theta_end=self._save_model(active.id),
            optimizer_start=active.optimizer_start,
            optimizer_end=self._save_optimizer(active.optimizer, active.id),
            optimizer=optimizer_log, datasets=active.datasets,
            batch_ids=active.logger.batch_ids, rng_seeds=active.logger.seeds,
            curvature_sketch=self._save_sketch(active.sketch), changes=active.changes,
            micro_batches=active.logger.micro_batches(), autocast=active.autocast,
            loss_scaler=with_skipped(active.loss_scaler, active.logger.skipped_batches),
            code_commit=self._code_commit, notes=active.notes,
            config_hash=_stage_config_hash(optimizer_log, active.datasets))
        self._stages.append(stage)
        self._end = Snapshot(stage.id, self.model)
        self._write()

    def _save_model(self, stage_id: str) -> CheckpointRef:
        state = _finite_state(model_state(self.model), stage_id, "model weights")
        return save_tensors(state, self.out_dir / "checkpoints", self.out_dir, prefix="model")

    def _save_optimizer(self, optimizer: torch.optim.Optimizer, stage_id: str) -> CheckpointRef:
        state = _finite_state(optimizer_state(optimizer, self.model), stage_id, "optimizer state")
        return save_tensors(state, self.out_dir / "checkpoints", self.out_dir, prefix="optim")

    def _sketch_log(self, convention: str):
        if self._sketch is None:
            return None
        self._sketch.start_stage(self._stages, convention == "carry", self.out_dir)
        return self._sketch

    def _save_sketch(self, sketch) -> CurvatureSketch | None:
        tensors = sketch.tensors() if sketch is not None else None
        if tensors is None:
            return None
        ref = save_tensors(tensors, self.out_dir / "checkpoints", self.out_dir, prefix="sketch")
        spec = sketch.spec
        return CurvatureSketch(file=ref, dim=spec.dim, samples=spec.samples, seed=spec.seed)

    def _write(self) -> None:
        write_lineage_json(self.lineage, self.out_dir / LINEAGE_FILE)

    def _require_active(self, what: str) -> _ActiveStage:
        if self._active is None:
            raise LineageError(f"recorder.{what}() called outside a recorder.stage(...) block")
        return self._active


class _ActiveStage:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def _checked(rule, value: str, what: str) -> str:
    """An identifier or label in its normal form (auditor.identifiers), else a LineageError."""
    try:
        return rule(value, what)
    except ValueError as exc:
        raise LineageError(str(exc)) from None


def _finite_state(tensors: dict[str, torch.Tensor], stage_id: str,
                  what: str) -> dict[str, torch.Tensor]:
    """``tensors``, after refusing a checkpoint that holds NaN or Inf (a diverged run)."""
    name = first_nonfinite(tensors)
    if name is not None:
        raise LineageError(
            f"stage {stage_id!r}: refusing to record a checkpoint: the {what} hold NaN "
            f"or Inf in {name!r} (training diverged; lower the learning rate or clip gradients)")
    return tensors


def _stage_config_hash(log: OptimizerLog, datasets: list[DatasetRef]) -> str:
    return config_hash({"optimizer": log.model_dump(mode="json"),
                        "datasets": [d.model_dump(mode="json") for d in datasets]})


def load_lineage(path: str | Path) -> ModelVersion:
    """Read a lineage.json (or the folder holding it)."""
    path = Path(path)
    return read_lineage_json(path / LINEAGE_FILE if path.is_dir() else path)


__all__ = ["Recorder", "load_lineage", "StepLog"]
