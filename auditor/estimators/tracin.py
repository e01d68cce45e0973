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
from auditor.estimators.records import effects_record, embeddings_from_flat
from auditor.estimators.scoring.gradients import behaviour_gradient
from auditor.estimators.settings import EstimatorSettings, setting
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout
from auditor.lineage.sketching.union import lineage_layout
from auditor.task import TrainingTask

Segment = tuple[dict[str, torch.Tensor], torch.Tensor]  # (θ_c, v_c)


@dataclass(frozen=True)
class TracInSettings(EstimatorSettings):
    checkpoints: int = setting(2, "points per stage where ∇f is taken (TracInCP), ≥ 1")

    def __post_init__(self) -> None:
        super().__post_init__()
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

        def before(step: FactualStep, model) -> None:
            if step.local_step in cuts[step.stage_index]:
                params = {n: p.clone() for n, p in params_of(model).items()}
                segments[step.stage_index].append((params, torch.zeros(layout.total,
                                                                       dtype=torch.float64)))
                if lineage.changes and step.stage_index not in probes:
                    probes[step.stage_index] = _clone_structure(model)

        def after(step: FactualStep, model, optimizer) -> None:
            lrs = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
            grads = {n: p.grad * lrs[id(p)] for n, p in model.named_parameters()
                     if p.grad is not None and id(p) in lrs}
            segments[step.stage_index][-1][1].sub_(views[step.stage_index].flatten(grads))

        walk(version, root, task, 0, before, after)
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
        for k, segments in enumerate(state.segments):
            probe = state.probes.get(k, final_probe)
            layout = state.layout if state.views is None else state.views[k]
            for params, vector in segments:
                _load(probe, params)
                for q, behaviour in enumerate(behaviours):
                    effects[k, q] += float(layout.flatten(behaviour_gradient(probe, behaviour))
                                           @ vector)
        return effects_record(embeddings, behaviours, model, effects, started)


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
