"""``naive``: e_k = θ_end(k) − θ_start(k), the stage's own parameter change.

It ignores what later stages do to that change (momentum tails, weight-decay shrinkage, Adam's
preconditioning). The optimizer-aware estimators exist to do better; reports show this baseline
beside them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators.base import Estimator, StageEffects, StageEmbeddings
from auditor.estimators.device import resolve_device
from auditor.estimators.propagation.h0_stream import PRECISIONS
from auditor.estimators.records import stage_embeddings
from auditor.estimators.scoring.gradients import score_by_gradients
from auditor.estimators.settings import (
    EstimatorSettings,
    check_streaming,
    setting,
    spill_setting,
    workspace_setting,
)
from auditor.estimators.shards import Shards, spills
from auditor.estimators.workspace import (
    chunk_elements,
    release_freed_memory,
    row_chunks,
    workspace_bytes,
)
from auditor.hashing import config_hash
from auditor.lineage.checkpoints import LazyCheckpoints, load_tensors
from auditor.lineage.merges import through_merges
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask


@dataclass(frozen=True)
class NaiveSettings(EstimatorSettings):
    precision: str = setting("float64", "float64 (default) or float32 (half the memory of the "
                             "embeddings; docs/scaling.md#precision)", hashed="precision")
    stream: bool = setting(True, "read one chunk of a parameter tensor at a time from the "
                           "checkpoints (docs/scaling.md); not in the config hash", hashed=False)
    spill_above_mb: float | None = spill_setting()
    workspace_mb: float = workspace_setting()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_streaming("naive", self, PRECISIONS)


class NaiveEstimator(Estimator):
    """The stage's own parameter change."""

    name: ClassVar[str] = "naive"
    version: ClassVar[str] = "1"
    handles_parameter_changes: ClassVar[bool] = True
    handles_merges: ClassVar[bool] = True
    Settings = NaiveSettings
    settings: NaiveSettings

    @property
    def config_hash(self) -> str:
        # without a "settings" key: the form of the first release, kept so stored runs match
        # (float64: the numbers of that release); float32 hashes its precision
        if self.settings.precision != "float64":
            return config_hash({"estimator": self.name, "version": self.version,
                                "settings": {"precision": self.settings.precision}})
        return config_hash({"estimator": self.name, "version": self.version})

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        started = time.perf_counter()
        device = resolve_device(self.device)
        if self.settings.stream:
            dtype = PRECISIONS[self.settings.precision]
            workspace = workspace_bytes(self.settings.workspace_mb, version.parameters)
            spill = spills(len(version.stages), version.parameters, dtype,
                           self.settings.spill_above_mb, workspace)
            vectors = _streamed(version, root, dtype, device, spill, workspace)
            return stage_embeddings(self, version, vectors, started)
        vectors = []
        for k, stage in enumerate(version.stages):
            start = load_tensors(stage.theta_start, root)
            end = load_tensors(stage.theta_end, root)
            vectors.append(_final_names(version, k, {
                name: (end[name].double() - start[name].double())
                for name in end if name in start and end[name].is_floating_point()}, root))
        return stage_embeddings(self, version, vectors, started)

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        return score_by_gradients(embeddings, behaviours, model)


def _streamed(version: ModelVersion, root: str | Path, dtype: torch.dtype,
              device: torch.device, spill: bool, workspace: int) -> list:
    """θ_end − θ_start chunk by chunk (ranges of rows sized to ``workspace``) from the
    memory-mapped checkpoints (on ``device``, kept on the CPU, or on disk when ``spill``)."""
    read = LazyCheckpoints(root)
    pairs = [(read(stage.theta_start), read(stage.theta_end)) for stage in version.stages]
    names = list(dict.fromkeys(name for _, end in pairs for name in end.keys()))
    shards = Shards(len(pairs)) if spill else None
    merged = {name for stage in version.stages if stage.changes is not None
              for m in stage.changes.merges for name in (m.weight, m.base, m.a, m.b)}
    elements = chunk_elements(workspace, len(pairs) + 3, dtype.itemsize)
    vectors: list[dict[str, torch.Tensor]] = [{} for _ in pairs]
    for name in names:
        shapes = {reader.shape(name) for pair in pairs for reader in pair
                  if name in pair[0].keys() and name in pair[1].keys()}
        held = []  # chunks kept in memory, joined below
        for rows in (row_chunks(shapes.pop(), elements) if len(shapes) == 1 else [None]):
            per_stage = []
            for start, end in pairs:
                after = end.get(name, rows) if name in start.keys() else None
                if after is None or not after.is_floating_point():
                    per_stage.append(None)
                    continue
                before = start.get(name, rows)
                per_stage.append((after.to(device, dtype) - before.to(device, dtype)).to("cpu"))
            if shards is not None and all(t is not None for t in per_stage) \
                    and name not in merged:  # a merge reads and adds to these: kept in memory
                shards.add(name, per_stage, rows)
            else:
                held.append(per_stage)
        for k in range(len(pairs) if held else 0):
            parts = [chunk[k] for chunk in held]
            if parts[0] is not None:
                vectors[k][name] = parts[0] if len(parts) == 1 else torch.cat(parts)
    release_freed_memory()
    if any(stage.changes is not None for stage in version.stages):
        vectors = [_final_names(version, k, vector, root) for k, vector in enumerate(vectors)]
    if shards is None:
        return vectors
    if not any(vectors):
        return shards.vectors()
    for k, lazy in enumerate(shards.vectors()):  # rare: a tensor some stages lack, in memory
        vectors[k].update(lazy.items())
    return vectors


def _final_names(version: ModelVersion, k: int, vector: dict, root: str | Path) -> dict:
    """Stage k's displacement under the final model's names (a stage that adds adapters keeps
    them: its own effect includes them; a tensor a later stage removes is dropped; a later
    adapter merge adds its difference to the merged weight, docs/maths.md#merged-adapters)."""
    if any(s.changes is not None and s.changes.merges for s in version.stages[k + 1:]):
        ends = {}

        def values(i: int) -> dict:
            if i not in ends:
                ends[i] = load_tensors(version.stages[i].theta_end, root)
            return ends[i]

        return through_merges(version, k, vector, values)
    named = {version.final_name(k, name): tensor for name, tensor in vector.items()}
    named.pop(None, None)
    return named
