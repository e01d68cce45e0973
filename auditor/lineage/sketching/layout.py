"""Flat float64 views of a model's parameters, and the stage displacements D_k and M_k.

Tangents (the displacement a removed stage leaves behind) are kept as one flat float64 vector
over ``model.named_parameters()`` in order, frozen parameters included: they still move the
gradients of the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.models import ModelVersion, Stage

Vector = dict[str, torch.Tensor]  # one tensor per trainable parameter name


@dataclass(frozen=True)
class ParamLayout:
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, model: torch.nn.Module) -> ParamLayout:
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(p.shape for _, p in named),
                   tuple(p.numel() for _, p in named))

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def offsets(self) -> dict[str, slice]:
        spans, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            spans[name] = slice(start, start + size)
            start += size
        return spans

    def flatten(self, tensors: Vector) -> torch.Tensor:
        """One float64 vector; names absent from ``tensors`` count as zeros."""
        parts = []
        for name, _shape, size in zip(self.names, self.shapes, self.sizes):
            tensor = tensors.get(name)
            parts.append(torch.zeros(size, dtype=torch.float64) if tensor is None
                         else tensor.detach().reshape(-1).to("cpu", torch.float64))
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def unflatten(self, flat: torch.Tensor, like: dict[str, torch.Tensor] | None = None) -> Vector:
        """Tensors by name (views of ``flat``, cast to ``like``'s dtype and device if given)."""
        out, start = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            piece = flat[start:start + size].view(shape)
            if like is not None:
                piece = piece.to(device=like[name].device, dtype=like[name].dtype)
            out[name] = piece
            start += size
        return out

    def group_index(self, stage: Stage) -> torch.Tensor:
        """Per coordinate: the stage's optimizer group, or len(groups) when frozen / not optimized."""
        groups = stage.optimizer.groups
        index = torch.full((self.total,), len(groups), dtype=torch.long)
        spans = self.offsets()
        for g, group in enumerate(groups):
            frozen = set(group.frozen)
            for name in group.params:
                if name in spans and name not in frozen:
                    index[spans[name]] = g
        return index


def load_flat(layout: ParamLayout, ref, root: str | Path, suffix: str = "") -> torch.Tensor:
    """A checkpoint as a flat vector (``suffix`` picks optimizer fields such as ``.exp_avg``)."""
    if ref is None:
        return torch.zeros(layout.total, dtype=torch.float64)
    tensors = load_tensors(ref, root)
    if suffix:
        tensors = {name: tensors[name + suffix] for name in layout.names if name + suffix in tensors}
    return layout.flatten(tensors)


def momentum_field(stage: Stage) -> str:
    return ".momentum_buffer" if stage.optimizer.kind == "sgd" else ".exp_avg"


@dataclass
class StageDisplacements:
    """D_k = θ_{e_k} − θ_{s_k} and M_k = m_{e_k} − m_{s_k} (zero unless the next stage carries)."""

    theta: list[torch.Tensor]  # θ_{s_k} for k = 0..K-1, then θ_T
    changes: list[torch.Tensor]  # D_k
    momenta: list[torch.Tensor]  # M_k


def stage_displacements(version: ModelVersion, root: str | Path, layout: ParamLayout,
                        views: tuple[ParamLayout, ...] | None = None) -> StageDisplacements:
    """``views[k]``: stage k's parameters in ``layout`` (a lineage that changes the parameter
    set, auditor.lineage.sketching.union); D_k is then θ_{e_k} − θ_{s_k} in stage k's names."""
    stages = version.stages
    views = views or (layout,) * len(stages)
    theta = [load_flat(views[k], s.theta_start, root) for k, s in enumerate(stages)]
    theta.append(load_flat(views[-1], stages[-1].theta_end, root))
    ends = [theta[k + 1] if k + 1 == len(stages) or stages[k + 1].changes is None
            else load_flat(views[k], stages[k].theta_end, root) for k in range(len(stages))]
    changes = [ends[k] - theta[k] for k in range(len(stages))]
    momenta = [momentum_change(stage, k + 1 < len(stages) and stages[k + 1].convention == "carry",
                               root, views[k]) for k, stage in enumerate(stages)]
    return StageDisplacements(theta, changes, momenta)


def momentum_change(stage: Stage, carried: bool, root: str | Path,
                    layout: ParamLayout) -> torch.Tensor:
    """M_k: the stage's change of the momentum buffer, when the next stage carries it."""
    if not carried:
        return torch.zeros(layout.total, dtype=torch.float64)
    field = momentum_field(stage)
    end = load_flat(layout, stage.optimizer_end, root, field)
    return end - load_flat(layout, stage.optimizer_start, root, field)


def stage_bounds(version: ModelVersion) -> list[tuple[int, int]]:
    """[s_k, e_k) in global steps for every stage."""
    bounds, start = [], 0
    for stage in version.stages:
        bounds.append((start, start + stage.steps))
        start += stage.steps
    return bounds
