"""Walk the factual trajectory θ_t step by step by replaying the logged stages.

The curvature-aware estimators need θ_t (and Adam's preconditioner p_t) at every step after the
first stage. Boundary checkpoints plus the bitwise replay of ``auditor.lineage.replay`` give them
without storing per-step weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditor.estimators.propagation.dynamics import StageCoefficients, stage_coefficients
from auditor.lineage.checkpoints import Tensors, load_tensors
from auditor.lineage.continuation import enter_stage
from auditor.lineage.counterfactual import load_model
from auditor.lineage.models import ModelVersion
from auditor.lineage.replay import run_stage, seed_step
from auditor.lineage.sketching.layout import ParamLayout
from auditor.task import TrainingTask


@dataclass
class FactualStep:
    stage_index: int
    local_step: int
    global_step: int
    batch: Any
    seed: int | None


Before = Callable[[FactualStep, nn.Module], None]
After = Callable[[FactualStep, nn.Module, torch.optim.Optimizer], None]


def has_momentum_buffers(state: Tensors | None) -> bool:
    return bool(state) and any(k.endswith((".momentum_buffer", ".exp_avg")) for k in state)


def all_coefficients(version: ModelVersion, root: str | Path, layout: ParamLayout,
                     views: tuple[ParamLayout, ...] | None = None) -> list[StageCoefficients]:
    """Step coefficients of every stage (reading carry stages' entry state for buffer presence);
    ``views[k]`` places stage k's parameters in ``layout`` (auditor.lineage.sketching.union:
    a parameter absent from stage k takes no step there)."""
    views = views or (layout,) * len(version.stages)
    result = []
    for stage, view in zip(version.stages, views):
        state = (load_tensors(stage.optimizer_start, root)
                 if stage.convention == "carry" and stage.optimizer_start else None)
        fresh = not has_momentum_buffers(state)
        result.append(stage_coefficients(stage, view.group_index(stage), fresh))
    return result


def walk(version: ModelVersion, root: str | Path, task: TrainingTask, first: int,
         before: Before | None = None, after: After | None = None,
         last: int | None = None) -> nn.Module:
    """Replay stages ``first``..``last`` (default K−1) from θ_{s_first}, with hooks per step."""
    stages = version.stages
    model = load_model(task, version, Path(root), stages[first].theta_start)
    state = (load_tensors(stages[first].optimizer_start, root)
             if stages[first].optimizer_start is not None else None)
    offset = sum(s.steps for s in stages[:first])
    for j in range(first, len(stages) if last is None else last + 1):
        stage = stages[j]
        if j > first:  # a declared change (adapters added): the model as the stage began
            model = enter_stage(task, model, stage, Path(root))
        info = _StepInfo(j, offset, stage)
        state_in = state if stage.convention == "carry" else None
        state = run_stage(model, task, stage, state_in,
                          before_step=info.before_hook(before),
                          after_step=info.after_hook(after))
        offset += stage.steps
    return model


class _StepInfo:
    def __init__(self, stage_index: int, offset: int, stage):
        self.j, self.offset, self.stage = stage_index, offset, stage
        self.current: FactualStep | None = None

    def before_hook(self, before: Before | None):
        def hook(t: int, model: nn.Module, batch: Any) -> None:
            seed = self.stage.rng_seeds[t] if self.stage.rng_seeds is not None else None
            self.current = FactualStep(self.j, t, self.offset + t, batch, seed)
            if before is not None:
                before(self.current, model)
                if seed is not None:
                    seed_step(seed)  # the hook's own forward passes must not shift dropout
        return hook

    def after_hook(self, after: After | None):
        def hook(t: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
            if after is not None:
                after(self.current, model, optimizer)
        return hook


def exp_avg_sq(optimizer: torch.optim.Optimizer, model: nn.Module,
               layout: ParamLayout) -> torch.Tensor:
    """Adam's v_{t+1} as a flat vector (zeros for parameters without state)."""
    by_name = dict(model.named_parameters())
    tensors = {}
    for name in layout.names:
        state = optimizer.state.get(by_name[name])
        if state and "exp_avg_sq" in state:
            tensors[name] = state["exp_avg_sq"]
    return layout.flatten(tensors)


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters()}
