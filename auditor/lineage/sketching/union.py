"""One vector space for a lineage whose stages change the parameter set (docs/maths.md#changing-parameter-sets).

A stage may add tensors (LoRA adapters, a new head), rename them (peft moves ``x.weight`` to
``base_model.model.x.base_layer.weight``) or remove them. The estimators work in the *union* of
every parameter over the lineage: each tensor is one block under its last stage's name (the
final model's parameters first, in their order; tensors a stage removed after them). Stage j
sees the union through a ``StageView``: its own names, placed at their blocks; a block that
does not exist at stage j is not there (zero displacement, no step, no curvature).

A lineage without changes gets the plain layout of ``task.build_model()`` (the numbers of the
estimators are then those of the release before this module).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from auditor.lineage.continuation import adapt_structure
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout, Vector


@dataclass(frozen=True)
class StageView(ParamLayout):
    """Stage j's parameters under stage j's names, each at its block of the union vector."""

    spans: tuple[slice, ...] = ()
    union_total: int = 0

    @property
    def total(self) -> int:
        return self.union_total

    def offsets(self) -> dict[str, slice]:
        return dict(zip(self.names, self.spans))

    def flatten(self, tensors: Vector) -> torch.Tensor:
        flat = torch.zeros(self.union_total, dtype=torch.float64)
        for name, span in zip(self.names, self.spans):
            tensor = tensors.get(name)
            if tensor is not None:
                flat[span] = tensor.detach().reshape(-1).to("cpu", torch.float64)
        return flat

    def unflatten(self, flat: torch.Tensor, like: dict[str, torch.Tensor] | None = None) -> Vector:
        out = {}
        for name, shape, span in zip(self.names, self.shapes, self.spans):
            piece = flat[span].view(shape)
            if like is not None:
                piece = piece.to(device=like[name].device, dtype=like[name].dtype)
            out[name] = piece
        return out


@dataclass(frozen=True)
class LineageLayout:
    """``union``: every parameter of the lineage; ``final``: the last stage's (the first
    ``final.total`` coordinates of the union); ``views[j]``: stage j's parameters in it."""

    union: ParamLayout
    final: ParamLayout
    views: tuple[ParamLayout, ...]
    changes: bool

    def final_part(self, flat: torch.Tensor) -> torch.Tensor:
        return flat[:self.final.total]

    def names_at(self, index: int) -> dict[str, str]:
        """Final name -> stage ``index``'s name of the final model's tensors present there."""
        view = self.views[index]
        if not self.changes:
            return {name: name for name in view.names}
        final = {span.start: name for name, span in self.final.offsets().items()}
        return {final[span.start]: name for name, span in view.offsets().items()
                if span.start in final and span.start < self.final.total}


def _union_key(version: ModelVersion, index: int, name: str) -> str:
    """The block of tensor ``name`` of stage ``index``: its name in the last stage, or, when a
    later stage removes it, its name where it was last present and that stage's id."""
    stages = version.stages
    for i in range(index + 1, len(stages)):
        change = stages[i].changes
        if change is None:
            continue
        if name in change.removed:
            return f"{name}@{stages[i - 1].id}"
        name = change.renamed.get(name, name)
    return name


def names_back(version: ModelVersion, index: int, name: str) -> list[str | None]:
    """Tensor ``name`` of stage ``index``: its name in every stage up to ``index`` (None before
    the stage that added it, and after ``index``)."""
    names: list[str | None] = [None] * len(version.stages)
    for i in range(index, -1, -1):
        names[i] = name
        change = version.stages[i].changes
        if i == 0 or change is None:
            continue
        if name in change.added:
            break
        name = {new: old for old, new in change.renamed.items()}.get(name, name)
    return names


def lineage_layout(task, version: ModelVersion) -> LineageLayout:
    """The union layout of ``version`` and every stage's view of it (structures rebuilt with
    the task's ``adapt``, as replay does)."""
    count = len(version.stages)
    if all(stage.changes is None for stage in version.stages):
        layout = ParamLayout.of(task.build_model())
        return LineageLayout(layout, layout, (layout,) * count, False)
    model = task.build_model()
    structures = []
    for stage in version.stages:
        if stage.changes is not None:
            model = adapt_structure(task, model, stage)
        structures.append(ParamLayout.of(model))
    final = structures[-1]
    keys = [[_union_key(version, j, n) for n in s.names] for j, s in enumerate(structures)]
    order, shapes = list(final.names), dict(zip(final.names, final.shapes))
    for j, structure in enumerate(structures):
        for key, shape in zip(keys[j], structure.shapes):
            if key not in shapes:
                order.append(key)
                shapes[key] = shape
    union = ParamLayout(tuple(order), tuple(shapes[k] for k in order),
                        tuple(shapes[k].numel() for k in order))
    spans = union.offsets()
    views = tuple(StageView(s.names, s.shapes, s.sizes, tuple(spans[k] for k in keys[j]),
                            union.total) for j, s in enumerate(structures))
    return LineageLayout(union, final, views, True)
