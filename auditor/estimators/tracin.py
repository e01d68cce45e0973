"""``tracin``: the TracIn-style baseline (docs/maths.md#tracin).

effect_k ≈ Σ_{t∈I_k} η_t ∇f(θ_t)ᵀ(−ν_t g_t), with ∇f taken at ``checkpoints`` evenly spaced
points inside the stage (TracInCP) instead of every step. It ignores momentum amplification,
weight decay and everything later stages do; reports show it to say what the optimizer-aware
estimators add. One factual replay of every stage collects the η-weighted gradient sums.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from auditor.behaviours.base import Behaviour
from auditor.errors import EstimatorError
from auditor.estimators.base import Estimator, EstimatorState, StageEffects, StageEmbeddings
from auditor.estimators.device import task_on
from auditor.estimators.propagation.trajectory import FactualStep, params_of, walk
from auditor.estimators.records import effects_record, embeddings_from_flat, stage_embeddings
from auditor.estimators.scoring.gradients import behaviour_gradient
from auditor.estimators.settings import EstimatorSettings, check_bool, replace_setting, setting
from auditor.estimators.tracin_segments import SegmentStore
from auditor.estimators.workspace import release_freed_memory
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout
from auditor.lineage.sketching.union import lineage_layout
from auditor.task import TrainingTask

Segment = tuple[dict[str, torch.Tensor], torch.Tensor]  # (θ_c, v_c)


@dataclass(frozen=True)
class TracInSettings(EstimatorSettings):
    checkpoints: int = setting(2, "points per stage where ∇f is taken (TracInCP), ≥ 1")
    stream: bool = setting(True, "keep the segments (θ_c, v_c) and the stage embeddings on "
                           "disk, one of each in memory at a time (docs/scaling.md); False "
                           "holds them all; not in the config hash", hashed=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        replace_setting(self, "stream", check_bool("tracin", "stream", self.stream))
        if isinstance(self.checkpoints, bool) or not isinstance(self.checkpoints, int) \
                or self.checkpoints < 1:
            raise EstimatorError("tracin: checkpoints per stage must be ≥ 1")


@dataclass
class TracInState(EstimatorState):
    """Per stage, its segments' start points θ_c and η-weighted update sums v_c."""

    layout: ParamLayout
    segments: list[list[Segment]] = field(default_factory=list)
    # a lineage that changes the parameter set: each stage's view of the union layout and a
    # model of that stage's structure to take ∇f in (auditor.lineage.sketching.union)
    views: tuple[ParamLayout, ...] | None = None
    probes: dict[int, torch.nn.Module] = field(default_factory=dict)
    store: SegmentStore | None = None  # streamed: the segments on disk

    def stage_segments(self, k: int):
        return self.segments[k] if self.store is None else self.store.segments(k)


class TracInEstimator(Estimator):
    name: ClassVar[str] = "tracin"
    version: ClassVar[str] = "1"
    handles_parameter_changes: ClassVar[bool] = True
    handles_merges: ClassVar[bool] = True
    Settings = TracInSettings
    settings: TracInSettings

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        """Per stage: segment start points θ_c and segment sums v_c = −Σ η_t ν_t g_t."""
        started = time.perf_counter()
        task = task_on(task, self.device)
        lineage = lineage_layout(task, version)
        layout, views = lineage.union, lineage.views
        segments: list[list[Segment]] = [[] for _ in version.stages]
        probes: dict[int, torch.nn.Module] = {}
        cuts = [_cuts(stage.steps, self.settings.checkpoints) for stage in version.stages]
        running = _Running(SegmentStore(len(version.stages)), lineage) \
            if self.settings.stream else None

        def before(step: FactualStep, model) -> None:
            if step.local_step in cuts[step.stage_index]:
                params = {n: p.clone() for n, p in params_of(model).items()}
                if running is not None:
                    running.start(step.stage_index, params)
                else:
                    segments[step.stage_index].append(
                        (params, torch.zeros(layout.total, dtype=torch.float64)))
                if lineage.changes and step.stage_index not in probes:
                    probes[step.stage_index] = _clone_structure(model)

        def after(step: FactualStep, model, optimizer) -> None:
            lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
            if running is not None:  # tensor by tensor: the same elementwise operations
                running.subtract(views[step.stage_index], model, lrs)
                return
            grads = {n: p.grad * lrs[id(p)] for n, p in model.named_parameters()
                     if p.grad is not None and id(p) in lrs}
            segments[step.stage_index][-1][1].sub_(views[step.stage_index].flatten(grads))

        walk(version, root, task, 0, before, after)
        if running is not None:
            running.close(len(version.stages))
            release_freed_memory()
            state = TracInState(layout, [], views if lineage.changes else None, probes,
                                running.store)
            return stage_embeddings(self, version, running.store.embeddings, started, state)
        totals = [lineage.final_part(sum((v for _, v in segs),
                                         torch.zeros(layout.total, dtype=torch.float64)))
                  for segs in segments]
        state = TracInState(layout, segments, views if lineage.changes else None, probes)
        return embeddings_from_flat(self, version, lineage.final, totals, started, state)

    def score(self, embeddings: StageEmbeddings, behaviours: list[Behaviour],
              model: torch.nn.Module) -> StageEffects:
        started = time.perf_counter()
        state = embeddings.state
        if not isinstance(state, TracInState):
            raise EstimatorError("tracin scores only the embeddings its own prepare made")
        effects = np.zeros((len(embeddings.stages), len(behaviours)))
        final_probe = _clone_structure(model)
        for k in range(len(embeddings.stages)):
            probe = state.probes.get(k, final_probe)
            layout = state.layout if state.views is None else state.views[k]
            for params, vector in state.stage_segments(k):
                _load(probe, params)
                for q, behaviour in enumerate(behaviours):
                    effects[k, q] += float(layout.flatten(behaviour_gradient(probe, behaviour))
                                           @ vector)
                del params, vector  # streamed: one segment in memory at a time
        return effects_record(embeddings, behaviours, model, effects, started)


class _Running:
    """The streamed prepare's one running segment and one running stage sum: each segment
    written when the next begins, each stage's embedding when its last segment ends (the sum
    taken in the order of the whole-memory form: zeros + v_1 + v_2 + …)."""

    def __init__(self, store: SegmentStore, lineage):
        self.store, self.lineage = store, lineage
        self.stage: int | None = None
        self.vector: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.done = 0  # stages whose embedding is written

    def _zeros(self) -> torch.Tensor:
        return torch.zeros(self.lineage.union.total, dtype=torch.float64)

    def start(self, k: int, params: dict[str, torch.Tensor]) -> None:
        self._end_segment()
        while self.done < k:
            self._end_stage()
        self.store.start(k, params)
        self.stage, self.vector = k, self._zeros()

    def subtract(self, view, model, lrs: dict[int, float]) -> None:
        """v_c −= η·g of this step, one tensor at a time (no flat copy of the gradient)."""
        spans = view.offsets()
        for name, p in model.named_parameters():
            if p.grad is not None and id(p) in lrs and name in spans:
                self.vector[spans[name]].sub_(
                    (p.grad * lrs[id(p)]).detach().reshape(-1).to("cpu", torch.float64))

    def _end_segment(self) -> None:
        if self.vector is None:
            return
        self.store.finish(self.stage, self.vector)
        if self.total is None:
            self.total = self._zeros()
        self.total.add_(self.vector)  # zeros + v_1 + v_2 + … in place
        self.vector = None

    def _end_stage(self) -> None:
        total = self._zeros() if self.total is None else self.total
        final = self.lineage.final
        self.store.embedding(self.done, final.unflatten(self.lineage.final_part(total)))
        self.total, self.done = None, self.done + 1

    def close(self, stages: int) -> None:
        self._end_segment()
        while self.done < stages:
            self._end_stage()


def _cuts(steps: int, count: int) -> set[int]:
    return {int(i * steps / count) for i in range(min(count, steps))}


def _clone_structure(model: torch.nn.Module) -> torch.nn.Module:
    clone = copy.deepcopy(model)
    clone.eval()
    return clone


def _load(model: torch.nn.Module, params: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(params[name])
