"""The lineage of a model version: ordered training stages and everything needed to replay them.

All models are strict (unknown keys are errors) and JSON round-trip exactly. Per-step optimizer
scalars are stored column-wise (one list per field, indexed ``[step][group]``) so that a stage of
10^5 steps stays a compact JSON document.

Step indexing follows docs/estimators.md: stage k covers the steps [s_k, e_k); ``theta_start`` is
the checkpoint before its first step, ``theta_end`` the one after its last step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from auditor.identifiers import identifier, label

# a stage's id and kind, normalised then restricted (auditor/identifiers.py) wherever a stage is
# read: the Recorder's lineage, an import spec, a stored lineage
StageId = Annotated[str, BeforeValidator(lambda value: identifier(value, "stage id"))]
StageKind = Annotated[str, BeforeValidator(lambda value: label(value, "stage kind"))]

OptimizerKind = Literal["sgd", "adam", "adamw"]
Convention = Literal["reset", "carry"]
CheckpointFormat = Literal["safetensors", "torch"]


MAX_STEPS = 10_000_000  # steps of one stage: beyond this a lineage is refused as absurd
MAX_RECORDS = 10**15  # records of one dataset


class Strict(BaseModel):
    """Unknown keys are errors; so are NaN and ±Inf in any float field."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True,
                              allow_inf_nan=False)


class DatasetRef(Strict):
    name: str
    digest: str = Field(description="sha256 of the dataset's canonical content or its manifest")
    records: int = Field(ge=0, le=MAX_RECORDS)
    licence: str = "unknown"
    provenance: str = "unknown"
    tags: list[str] = Field(default_factory=list, description="e.g. third-party, synthetic")

    @field_validator("tags", mode="before")
    @classmethod
    def _labels(cls, value):
        return [label(t, "dataset tag") for t in value] if isinstance(value, list) else value


class CheckpointRef(Strict):
    uri: str = Field(description="path, relative to the lineage file's folder or absolute")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: CheckpointFormat = "safetensors"


class CurvatureSketch(Strict):
    """Projected Gauss–Newton factors of every step of a stage, logged by the recorder
    (auditor.lineage.sketching.log): ``file`` holds ``factors`` (steps, samples, width) and their
    exact inner products with the earlier stages' displacements, ``dots`` (steps, samples,
    earlier stages, parameter tensors, 2)."""

    file: CheckpointRef
    dim: int = Field(ge=1, description="count-sketch buckets per parameter tensor, at most")
    samples: int | Literal["exact"] = Field(
        description="Rademacher samples per step, or exact (a basis of the output space)")
    seed: int = Field(ge=0)
    method: Literal["ggn-rademacher"] = "ggn-rademacher"


class ParamGroup(Strict):
    params: list[str] = Field(description="names (model.named_parameters) in this group")
    frozen: list[str] = Field(default_factory=list,
                              description="names in the group with requires_grad=False")


class LoraMerge(Strict):
    """An adapter pair merged into its base weight at a stage's start: W' = W + s·B·A (its
    transpose under ``transpose``, peft's ``fan_in_fan_out``). Recognised by the Recorder from
    the previous stage's end values (docs/maths.md#merged-adapters)."""

    weight: str = Field(description="the merged weight, its name in this stage")
    base: str = Field(description="W: the weight's name at the previous stage's end")
    a: str = Field(description="A (r × in): its name at the previous stage's end")
    b: str = Field(description="B (out × r): its name at the previous stage's end")
    scale: float = Field(description="s (peft: lora_alpha / r)")
    transpose: bool = Field(default=False, description="W' = W + s·(B·A)ᵀ (fan_in_fan_out)")


class ParameterChange(Strict):
    """How a stage's model differs from the previous stage's end, declared when the stage began
    and checked by the Recorder there (adapters added, a head added, adapters merged).

    Names are state-dict keys. Every other tensor continues unchanged (same values, same name).
    """

    added: list[str] = Field(default_factory=list,
                             description="tensors that appear; initial values in theta_start")
    renamed: dict[str, str] = Field(
        default_factory=dict, description="previous name -> name in this stage, same tensor")
    removed: list[str] = Field(default_factory=list, description="previous tensors dropped")
    recomputed: list[str] = Field(
        default_factory=list,
        description="tensors (names in this stage) whose values the change computes, e.g. base "
                    "weights an adapter was merged into; replay recomputes them")
    merges: list[LoraMerge] = Field(
        default_factory=list,
        description="how each recomputed tensor was computed (the Recorder refuses one it "
                    "cannot describe); the estimators carry tangents through it")
    adapter: str | None = Field(
        default=None, description="what made the change (e.g. peft LoRA r=4), for the report")

    @model_validator(mode="after")
    def _merges_recomputed(self) -> ParameterChange:
        merged = [m.weight for m in self.merges]
        for name in merged:
            if name not in self.recomputed or merged.count(name) > 1:
                raise ValueError(f"merge into {name!r}: not a recomputed tensor, or merged twice")
        return self


FLOAT32_MAX = float(np.finfo(np.float32).max)


class SkippedBatch(Strict):
    """A batch whose optimizer step the loss scaler skipped (Inf/NaN in the scaled gradients):
    it changed no parameter, but it backed the scale off, so replay runs it again."""

    before_step: int = Field(ge=0, le=MAX_STEPS,
                             description="index of the logged step it came before (steps: after "
                                         "the last)")
    ids: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    seed: int | None = Field(default=None, ge=0)
    micro_batches: list[Annotated[int, Field(ge=1)]] | None = None
    max_grad_norm: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _split(self) -> SkippedBatch:
        if self.micro_batches is not None and sum(self.micro_batches) != len(self.ids):
            raise ValueError("a skipped batch's micro_batches must split its ids")
        return self


class LossScaler(Strict):
    """fp16 mixed precision's dynamic loss scaler (``torch.amp.GradScaler``): its configuration
    and its state when the stage started, and the batches whose step it skipped. Replay runs a
    real GradScaler from this state over the logged and the skipped batches in their order."""

    scale: float = Field(gt=0, le=FLOAT32_MAX, description="the loss scale at the stage's start")
    growth_factor: float = Field(ge=1, le=FLOAT32_MAX)
    backoff_factor: float = Field(gt=0, le=1)
    growth_interval: int = Field(ge=1, le=2**31 - 1)
    growth_tracker: int = Field(ge=0, description="successive unskipped steps at the start")
    skipped: list[SkippedBatch] = Field(
        default_factory=list, description="batches whose step the scaler skipped, in order")

    @model_validator(mode="after")
    def _state(self) -> LossScaler:
        if float(np.float32(self.scale)) != self.scale:
            raise ValueError("loss_scaler.scale must be a float32 value (GradScaler's)")
        if self.growth_tracker >= self.growth_interval:
            raise ValueError("loss_scaler.growth_tracker must be below growth_interval")
        if len(self.skipped) > MAX_STEPS:
            raise ValueError(f"more than {MAX_STEPS:,} skipped batches in one stage")
        positions = [b.before_step for b in self.skipped]
        if positions != sorted(positions):
            raise ValueError("loss_scaler.skipped must be in training order")
        return self


class StepLog(Strict):
    """Per-step scalars, each a list over steps of a list over parameter groups. Every value is
    finite except a logged ``grad_norm`` (an overflowing mixed-precision step logs Inf)."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True,
                              allow_inf_nan=True)

    lr: list[list[float]]
    weight_decay: list[list[float]]
    momentum: list[list[float]] | None = None  # SGD
    dampening: list[list[float]] | None = None  # SGD
    beta1: list[list[float]] | None = None  # Adam/AdamW
    beta2: list[list[float]] | None = None
    eps: list[list[float]] | None = None
    adam_step: list[list[int]] | None = Field(
        default=None, description="Adam step count n_{t+1} after the step (bias correction)")
    max_grad_norm: list[float | None] | None = Field(
        default=None, description="clip threshold used at each step (None: no clipping)")
    grad_norm: list[float | None] | None = Field(
        default=None, description="total gradient norm before clipping, when clipped")

    @property
    def steps(self) -> int:
        return len(self.lr)

    def clip_factors(self) -> np.ndarray:
        """The factor ν_t ≤ 1 that clipping applied to the gradient at each step, as float64
        (1 where the step was not clipped or its norm was not logged)."""
        if not self.max_grad_norm or not self.grad_norm:
            return np.ones(self.steps)
        limit = np.array(self.max_grad_norm, dtype=np.float64)  # None -> nan
        norm = np.array(self.grad_norm, dtype=np.float64)
        factors = np.minimum(1.0, limit / (norm + 1e-6))
        return np.where(np.isnan(factors), 1.0, factors)

    @model_validator(mode="after")
    def _same_lengths(self) -> StepLog:
        n = len(self.lr)
        for name in ("weight_decay", "momentum", "dampening", "beta1", "beta2", "eps",
                     "adam_step", "max_grad_norm", "grad_norm"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"{name} has {len(column)} steps, lr has {n}")
        if n > MAX_STEPS:
            raise ValueError(f"{n} steps in one stage: more than the {MAX_STEPS:,} auditor reads")
        for name in ("lr", "weight_decay", "momentum", "dampening", "beta1", "beta2", "eps",
                     "max_grad_norm"):
            column = getattr(self, name)
            if column and not _finite(column):
                raise ValueError(f"steps.{name} holds NaN or Inf")
        for name, low, high in (("beta1", 0.0, 1.0), ("beta2", 0.0, 1.0),
                                ("momentum", 0.0, 1.0)):
            column = getattr(self, name)
            if column and not _within(column, low, high):
                raise ValueError(f"steps.{name} must lie in [{low:g}, {high:g})")
        return self


def _values(column: list) -> np.ndarray:
    flat = [v for row in column for v in (row if isinstance(row, list) else [row])
            if v is not None]
    return np.asarray(flat, dtype=np.float64)


def _finite(column: list) -> bool:
    return bool(np.isfinite(_values(column)).all())


def _within(column: list, low: float, high: float) -> bool:
    values = _values(column)
    return bool(((values >= low) & (values < high)).all())


class OptimizerLog(Strict):
    kind: OptimizerKind
    nesterov: bool = False
    weight_decay_mode: Literal["coupled", "decoupled"] = "coupled"
    amsgrad: bool = False
    maximize: bool = False
    foreach: bool | None = Field(default=None, description="torch implementation flag, for replay")
    fused: bool | None = Field(default=None, description="torch implementation flag, for replay")
    groups: list[ParamGroup]
    clip_over: Literal["model", "optimizer"] | None = Field(
        default=None, description="which parameters clipping's total norm runs over, in which "
                                  "order: model.parameters() (None, the default) or the "
                                  "optimizer's groups (PyTorch Lightning)")
    frozen_outside: list[str] | None = Field(
        default=None, description="model parameters in no group, frozen (requires_grad=False): "
                                  "a frozen base model under adapters")
    steps: StepLog

    @model_serializer(mode="wrap")
    def _without_absent_fields(self, handler):
        """Logs without the new fields serialise as before they existed (the lineage's sha256
        holds)."""
        data = handler(self)
        if isinstance(data, dict):
            for name in ("fused", "frozen_outside", "clip_over"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _kind_fields(self) -> OptimizerLog:
        s = self.steps
        if self.kind == "sgd" and s.momentum is None:
            raise ValueError("an sgd log needs steps.momentum (zeros for plain SGD)")
        if self.kind in ("adam", "adamw"):
            missing = [n for n in ("beta1", "beta2", "eps") if getattr(s, n) is None]
            if missing:
                raise ValueError(f"an {self.kind} log needs steps.{', steps.'.join(missing)}")
        if self.amsgrad:
            raise ValueError("amsgrad is not supported by the estimators")
        if self.kind == "adamw" and self.weight_decay_mode != "decoupled":
            raise ValueError("adamw uses decoupled weight decay")
        groups = len(self.groups)
        for t, row in enumerate(s.lr):
            if len(row) != groups:
                raise ValueError(f"steps.lr[{t}] has {len(row)} groups, optimizer has {groups}")
        return self


class Stage(Strict):
    id: StageId = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: StageKind = Field(description="pretrain, fine-tune, alignment, ...")
    started_at: datetime | None = None
    ended_at: datetime | None = None
    convention: Convention = Field(
        description="optimizer state at the stage's start: reset (fresh) or carry (from before)")
    theta_start: CheckpointRef
    theta_end: CheckpointRef
    optimizer_start: CheckpointRef | None = Field(
        default=None, description="optimizer state before the first step (carry)")
    optimizer_end: CheckpointRef | None = None
    optimizer: OptimizerLog
    datasets: list[DatasetRef] = Field(default_factory=list)
    batch_ids: list[list[int]] | None = Field(
        default=None, description="example ids of each step's batch, in order")
    rng_seeds: list[int] | None = Field(
        default=None, description="torch seed set before each step (dropout, augmentation)")
    curvature_sketch: CurvatureSketch | None = Field(
        default=None, description="opt-in: sketched curvature of every step (aa-ggn projection)")
    changes: ParameterChange | None = Field(
        default=None, description="declared change of the parameter set at the stage's start")
    micro_batches: list[list[int]] | None = Field(
        default=None, description="gradient accumulation: examples in each micro-batch of each "
                                  "step, in order (None: one batch per step)")
    autocast: Literal["bfloat16", "float16"] | None = Field(
        default=None, description="mixed precision: the autocast dtype of the forward passes")
    loss_scaler: LossScaler | None = Field(
        default=None, description="fp16 loss scaling (GradScaler): its start state and the "
                                  "batches whose step it skipped")
    code_commit: str | None = None
    config_hash: str | None = None
    notes: str | None = None

    @property
    def steps(self) -> int:
        return self.optimizer.steps.steps

    @property
    def replayable(self) -> bool:
        return self.batch_ids is not None

    def checkpoints(self) -> list[tuple[str, CheckpointRef]]:
        """(role, file) of every file the stage names: weights, optimizer state, sketch."""
        sketch = self.curvature_sketch.file if self.curvature_sketch else None
        roles = [("theta_start", self.theta_start), ("theta_end", self.theta_end),
                 ("optimizer_start", self.optimizer_start),
                 ("optimizer_end", self.optimizer_end), ("curvature_sketch", sketch)]
        return [(role, ref) for role, ref in roles if ref is not None]

    @model_serializer(mode="wrap")
    def _without_absent_sketch(self, handler):
        """A stage without a sketch serialises as before the field existed, so a lineage's
        sha256 (which the store compares when a version is added again) does not change."""
        data = handler(self)
        if isinstance(data, dict):
            for name in ("curvature_sketch", "changes", "micro_batches", "autocast",
                         "loss_scaler"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Stage:
        n = self.steps
        if self.batch_ids is not None and len(self.batch_ids) != n:
            raise ValueError(f"batch_ids has {len(self.batch_ids)} steps, the log has {n}")
        if self.rng_seeds is not None and len(self.rng_seeds) != n:
            raise ValueError(f"rng_seeds has {len(self.rng_seeds)} steps, the log has {n}")
        if self.micro_batches is not None:
            if self.batch_ids is None or len(self.micro_batches) != n or any(
                    sum(sizes) != len(ids) or min(sizes, default=0) < 1
                    for sizes, ids in zip(self.micro_batches, self.batch_ids)):
                raise ValueError("micro_batches must split every step's batch_ids")
        if self.loss_scaler is not None and self.loss_scaler.skipped and \
                self.loss_scaler.skipped[-1].before_step > n:
            raise ValueError(f"loss_scaler.skipped names a step after the stage's {n} steps")
        if self.convention == "carry" and self.optimizer_start is None:
            raise ValueError("a carry stage needs optimizer_start (the state it inherited)")
        return self


class ModelVersion(Strict):
    schema_version: Literal[1] = 1
    model: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    version: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    created_at: datetime | None = None
    task: str | None = Field(
        default=None,
        description="module:function returning the TrainingTask (model factory, loss, data)")
    parameters: int | None = Field(default=None, ge=0, description="trainable parameter count")
    description: str = ""
    licence: str = "unknown"
    parent: str | None = Field(default=None, description="version this one derives from")
    stages: list[Stage] = Field(min_length=1)

    @field_validator("model", "version", mode="before")
    @classmethod
    def _identifiers(cls, value, info):
        return identifier(value, info.field_name)

    def checkpoint_refs(self) -> list[CheckpointRef]:
        """Every checkpoint of the lineage once, in stage order (a stage's end checkpoint is
        usually the next one's start: files are named by content)."""
        refs: dict[tuple[str, str], CheckpointRef] = {}
        for stage in self.stages:
            for _role, ref in stage.checkpoints():
                refs.setdefault((ref.uri, ref.sha256), ref)
        return list(refs.values())

    def trained_parameters(self) -> set[str]:
        """Names some stage's optimizer updated (in a group and not frozen there): the
        parameters whose history the estimators attribute, whatever ``build_model()`` leaves
        trainable. Names are the last stage's (a tensor peft renamed later counts under its new
        name; one a later stage removed is left out)."""
        names = set()
        for index, stage in enumerate(self.stages):
            for group in stage.optimizer.groups:
                frozen = set(group.frozen)
                names.update(self.final_name(index, n) for n in group.params if n not in frozen)
        names.discard(None)
        return names

    def final_name(self, index: int, name: str) -> str | None:
        """The name tensor ``name`` of stage ``index`` has in the last stage (through the later
        stages' declared renames), or None when a later stage removes it."""
        for stage in self.stages[index + 1:]:
            change = stage.changes
            if change is None:
                continue
            if name in change.removed:
                return None
            name = change.renamed.get(name, name)
        return name

    @property
    def key(self) -> str:
        return f"{self.model}@{self.version}"

    @model_validator(mode="after")
    def _chained(self) -> ModelVersion:
        ids = [s.id for s in self.stages]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate stage ids: {', '.join(dupes)}")
        for prev, nxt in zip(self.stages, self.stages[1:]):
            # a declared change starts from other tensors; the Recorder checked the rest
            if prev.theta_end.sha256 != nxt.theta_start.sha256 and nxt.changes is None:
                raise ValueError(
                    f"stage {nxt.id!r} does not start from stage {prev.id!r}'s end checkpoint "
                    f"({nxt.theta_start.sha256[:12]} != {prev.theta_end.sha256[:12]})")
        return self

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)
