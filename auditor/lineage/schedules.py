"""Learning-rate schedules of imported lineages, expanded to one value per step."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from auditor.errors import LineageError
from auditor.lineage.models import Strict


class Schedule(Strict):
    kind: Literal["constant", "step", "cosine", "linear", "csv"]
    lr: float | None = Field(default=None, gt=0, description="peak / base learning rate")
    step_size: int | None = Field(default=None, gt=0, description="step: steps between decays")
    gamma: float = Field(default=0.1, gt=0, description="step: decay factor")
    warmup_steps: int = Field(default=0, ge=0, description="cosine/linear: linear warmup")
    min_lr: float = Field(default=0.0, ge=0, description="cosine: final learning rate")
    end_lr: float = Field(default=0.0, ge=0, description="linear: final learning rate")
    path: str | None = Field(default=None, description="csv: one learning rate per line")

    @model_validator(mode="after")
    def _needs(self) -> Schedule:
        if self.kind == "csv" and not self.path:
            raise ValueError("a csv schedule needs path")
        if self.kind != "csv" and self.lr is None:
            raise ValueError(f"a {self.kind} schedule needs lr")
        if self.kind == "step" and self.step_size is None:
            raise ValueError("a step schedule needs step_size")
        return self


def expand(schedule: Schedule, steps: int, base_dir: Path) -> list[float]:
    if schedule.kind == "csv":
        return _read_csv(base_dir / schedule.path, steps)
    return [_value(schedule, t, steps) for t in range(steps)]


def _value(s: Schedule, t: int, steps: int) -> float:
    if s.kind == "constant":
        return s.lr
    if s.kind == "step":
        return s.lr * s.gamma ** (t // s.step_size)
    if t < s.warmup_steps:
        return s.lr * (t + 1) / s.warmup_steps
    progress = (t - s.warmup_steps) / max(1, steps - s.warmup_steps)
    if s.kind == "cosine":
        return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * progress))
    return s.lr + (s.end_lr - s.lr) * progress


def _read_csv(path: Path, steps: int) -> list[float]:
    from auditor.yamlio import read_text

    text = read_text(path, LineageError, limit=64 * 1024 * 1024)  # regular files only
    try:
        rows = [row for row in csv.reader(text.splitlines()) if row and row[0].strip()]
    except csv.Error as exc:
        raise LineageError(f"cannot read learning-rate CSV: {exc}", path=str(path)) from None
    if rows and not _is_number(rows[0][-1]):
        rows = rows[1:]  # header
    values = []
    for line, row in enumerate(rows, start=1):
        if not _is_number(row[-1]) or not 0 <= float(row[-1]) < math.inf:
            raise LineageError(f"not a learning rate: {row[-1]!r}", path=str(path), line=line)
        values.append(float(row[-1]))
    if len(values) != steps:
        raise LineageError(f"has {len(values)} learning rates, the stage has {steps} steps",
                           path=str(path))
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
