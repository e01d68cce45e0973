"""Import the lineage of a model trained elsewhere from a ``lineage.yaml`` (docs/lineage-import.md).

Every checkpoint is read safely (safetensors, or torch state dicts with ``weights_only=True``),
hashed, and checked against an expected sha256 when the file gives one. Nothing is written when
any problem is found.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from auditor.errors import CheckpointError, LineageError
from auditor.hashing import config_hash
from auditor.identifiers import identifier
from auditor.lineage.checkpoints import file_sha256, read_unverified
from auditor.lineage.models import (
    MAX_STEPS,
    CheckpointRef,
    Convention,
    DatasetRef,
    ModelVersion,
    OptimizerKind,
    OptimizerLog,
    ParamGroup,
    Stage,
    StageId,
    StageKind,
    StepLog,
    Strict,
)
from auditor.lineage.schedules import Schedule, expand
from auditor.yamlio import LineMap, key_path, line_of, read_document, validate


class CheckpointSpec(Strict):
    """A checkpoint path, or a mapping {path, sha256, format}; a plain string is the path."""

    path: str
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    format: Literal["safetensors", "torch"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value):
        return {"path": value} if isinstance(value, str) else value


class OptimizerSpec(Strict):
    kind: OptimizerKind
    momentum: float = Field(default=0.0, ge=0, lt=1)
    dampening: float = Field(default=0.0, ge=0, le=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)  # each in [0, 1): checked below
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas(cls, value):
        if not all(0.0 <= beta < 1.0 for beta in value):
            raise ValueError(f"betas {list(value)} must each lie in [0, 1)")
        return value


class StageSpec(Strict):
    id: StageId = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: StageKind
    convention: Convention = "reset"
    checkpoint_in: CheckpointSpec
    checkpoint_out: CheckpointSpec
    optimizer_state_in: CheckpointSpec | None = None
    optimizer_state_out: CheckpointSpec | None = None
    optimizer: OptimizerSpec
    steps: int = Field(gt=0, le=MAX_STEPS)
    schedule: Schedule
    max_grad_norm: float | None = Field(default=None, gt=0)
    datasets: list[DatasetRef] = Field(default_factory=list)
    code_commit: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    notes: str | None = None



class ImportSpec(Strict):
    model: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    version: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    created_at: datetime | None = None
    task: str | None = None
    description: str = ""
    licence: str = "unknown"
    parent: str | None = None
    stages: list[StageSpec] = Field(min_length=1)

    @field_validator("model", "version", mode="before")
    @classmethod
    def _identifiers(cls, value, info):
        return identifier(value, info.field_name)


def import_lineage(path: str | Path) -> ModelVersion:
    """Parse and check ``path``; return the lineage (checkpoint URIs relative to its folder)."""
    path = Path(path)
    data, lines = read_document(path, LineageError)
    spec = validate(ImportSpec, data, path, lines, LineageError)
    importer = _Importer(path, lines)
    stages = [importer.stage(i, s) for i, s in enumerate(spec.stages)]
    header = spec.model_dump(exclude={"stages"})
    try:
        return ModelVersion(**header, parameters=importer.parameters, stages=stages)
    except ValidationError as exc:
        raise LineageError(exc.errors()[0]["msg"].removeprefix("Value error, "), path=str(path),
                           line=lines.get(("stages",)), key="stages") from None


class _Importer:
    def __init__(self, path: Path, lines: LineMap):
        self.path, self.lines, self.root = path, lines, path.parent
        self.parameters: int | None = None
        self._adam_steps = 0

    def fail(self, loc: tuple, message: str, exc: type = LineageError) -> Exception:
        line, key = line_of(loc, self.lines), key_path(loc)
        if exc is CheckpointError:
            return CheckpointError(f"{self.path}:{line}: {key}: {message}")
        return LineageError(message, path=str(self.path), line=line, key=key)

    def checkpoint(self, loc: tuple, spec: CheckpointSpec) -> tuple[CheckpointRef, dict]:
        file = self.root / spec.path
        if file.is_dir():  # a save_pretrained folder (auditor.lineage.trainer_files)
            file, spec = self._folder(loc, file, spec)
        fmt = spec.format or ("safetensors" if file.suffix == ".safetensors" else "torch")
        if not file.exists() and not file.is_symlink():
            raise self.fail(loc, f"checkpoint file {file} does not exist", CheckpointError)
        try:
            digest = file_sha256(file)
        except CheckpointError as exc:
            raise self.fail(loc, str(exc), CheckpointError) from None
        if spec.sha256 and digest != spec.sha256:
            raise self.fail(loc, f"checkpoint {file} has sha256 {digest[:16]}…, the file lists "
                                 f"{spec.sha256[:16]}…", CheckpointError)
        try:
            tensors = read_unverified(file, fmt)
        except CheckpointError as exc:
            raise self.fail(loc, str(exc), CheckpointError) from None
        return CheckpointRef(uri=spec.path, sha256=digest, format=fmt), tensors

    def _folder(self, loc: tuple, folder: Path, spec: CheckpointSpec
                ) -> tuple[Path, CheckpointSpec]:
        from auditor.lineage.trainer_files import consolidate, pretrained_file, read_sharded

        try:
            found = pretrained_file(folder)
            if found is None:
                found = consolidate(read_sharded(folder), self.root / "checkpoints"), \
                    "safetensors"
        except CheckpointError as exc:
            raise self.fail(loc, str(exc), CheckpointError) from None
        file, fmt = found
        path = str(file.resolve().relative_to(self.root.resolve())) \
            if file.resolve().is_relative_to(self.root.resolve()) else str(file.resolve())
        return file, spec.model_copy(update={"path": path, "format": fmt})

    def stage(self, index: int, spec: StageSpec) -> Stage:
        loc = ("stages", index)
        start, tensors = self.checkpoint((*loc, "checkpoint_in"), spec.checkpoint_in)
        end, end_tensors = self.checkpoint((*loc, "checkpoint_out"), spec.checkpoint_out)
        names = self._param_names(loc, tensors, end_tensors)
        opt_in = self._optional((*loc, "optimizer_state_in"), spec.optimizer_state_in)
        opt_out = self._optional((*loc, "optimizer_state_out"), spec.optimizer_state_out)
        if spec.convention == "carry" and opt_in is None:
            raise self.fail((*loc, "optimizer_state_in"),
                            "a carry stage needs the optimizer state it started from")
        log = self._optimizer_log(loc, spec, names)
        return Stage(
            id=spec.id, kind=spec.kind, convention=spec.convention, theta_start=start,
            theta_end=end, optimizer_start=opt_in, optimizer_end=opt_out, optimizer=log,
            datasets=spec.datasets, code_commit=spec.code_commit, started_at=spec.started_at,
            ended_at=spec.ended_at, notes=spec.notes,
            config_hash=config_hash(spec.model_dump(mode="json")))

    def _optional(self, loc, spec) -> CheckpointRef | None:
        return None if spec is None else self.checkpoint(loc, spec)[0]

    def _param_names(self, loc: tuple, start: dict, end: dict) -> list[str]:
        if set(start) != set(end):
            raise self.fail((*loc, "checkpoint_out"),
                            "holds different tensors than checkpoint_in "
                            f"(differing: {sorted(set(start) ^ set(end))[:5]})", CheckpointError)
        for name, tensor in start.items():
            if tuple(tensor.shape) != tuple(end[name].shape):
                raise self.fail((*loc, "checkpoint_out"),
                                f"tensor {name!r} changes shape between checkpoints",
                                CheckpointError)
            if tensor.dtype != end[name].dtype:
                raise self.fail((*loc, "checkpoint_out"),
                                f"tensor {name!r} changes dtype between checkpoints "
                                f"({tensor.dtype} -> {end[name].dtype})", CheckpointError)
        names = sorted(n for n, t in start.items() if t.is_floating_point())
        from auditor.lineage.trainer_files import unique_numel

        self.parameters = unique_numel(start)  # a tied weight stored twice counts once
        return names

    def _optimizer_log(self, loc: tuple, spec: StageSpec, names: list[str]) -> OptimizerLog:
        opt, n = spec.optimizer, spec.steps
        if spec.schedule.warmup_steps > n:
            raise self.fail((*loc, "schedule", "warmup_steps"),
                            f"warm-up of {spec.schedule.warmup_steps} steps is longer than the "
                            f"stage ({n} steps)")
        try:
            lrs = expand(spec.schedule, n, self.root)
        except LineageError as exc:
            if exc.path:
                raise
            raise self.fail((*loc, "schedule"), str(exc)) from None
        columns: dict = {"lr": [[lr] for lr in lrs], "weight_decay": [[opt.weight_decay]] * n}
        if opt.kind == "sgd":
            columns.update(momentum=[[opt.momentum]] * n, dampening=[[opt.dampening]] * n)
        else:
            columns.update(beta1=[[opt.betas[0]]] * n, beta2=[[opt.betas[1]]] * n,
                           eps=[[opt.eps]] * n, adam_step=self._adam_step_column(spec))
        if spec.max_grad_norm is not None:
            columns["max_grad_norm"] = [spec.max_grad_norm] * n
        return OptimizerLog(
            kind=opt.kind, nesterov=opt.nesterov, groups=[ParamGroup(params=names)],
            weight_decay_mode="decoupled" if opt.kind == "adamw" else "coupled",
            steps=StepLog(**columns))

    def _adam_step_column(self, spec: StageSpec) -> list[list[int]]:
        first = 0 if spec.convention == "reset" else self._adam_steps
        self._adam_steps = first + spec.steps
        return [[first + t + 1] for t in range(spec.steps)]
