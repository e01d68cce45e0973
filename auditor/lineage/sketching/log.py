"""The recorder's opt-in log of sketched Gauss–Newton factors (``Recorder(..., sketch=...)``).

``aa-ggn`` with ``projection=`` then propagates the stage displacements in d dimensions, O(m·d)
per step and stage, without touching the model (auditor.estimators.curvature.projection).
"""

from __future__ import annotations

from typing import Any

import torch

from auditor.errors import EstimatorError
from auditor.lineage.replay import seed_step
from auditor.lineage.sketching.countsketch import CountSketch
from auditor.lineage.sketching.factors import ggn_factors, step_generator, tensor_dots
from auditor.lineage.sketching.layout import ParamLayout, load_flat, momentum_change
from auditor.lineage.sketching.loss import LossModule
from auditor.lineage.sketching.spec import SketchSpec


class SketchLog:
    """The recorder's opt-in log of sketched factors, one row per optimizer step of the
    current stage. Made once per recorder (layout, count sketch and loss wrapper are built
    once); ``start_stage`` begins a stage's rows and adds the (D_k, M_k) of the stage before it.

    ``batch`` computes the factors at θ_t before the training loop's own forward pass and
    re-seeds torch afterwards, so the loop's dropout masks are untouched; a batch whose step
    never came (a GradScaler skipped it) is dropped, as in the step log.
    """

    def __init__(self, spec: SketchSpec, task: Any, model: torch.nn.Module):
        self.spec, self.task, self.model = spec, task, model
        self.layout = ParamLayout.of(model)
        first = next(iter(model.parameters()), None)
        self.dtype = first.dtype if first is not None else torch.float64
        self.device = first.device if first is not None else torch.device("cpu")
        self.sketch = CountSketch.build(self.layout, spec.dim, spec.seed)
        self.module = LossModule(model, task, "mean")
        self.pairs: list[torch.Tensor] = []  # (2, P) per finished stage, model dtype
        self.rows: list[tuple[torch.Tensor, torch.Tensor]] | None = []
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def start_stage(self, finished: list[Any], carried: bool, root: Any) -> None:
        """A new stage after ``finished`` (its convention ``carried`` decides M_k of the
        last one)."""
        del self.pairs[len(finished) - 1:]  # a stage that raised was not recorded
        pair = displacement_pair(finished[-1], carried, root, self.layout)
        self.pairs.append(pair.to(self.device, self.dtype))
        self.stacked = torch.stack(self.pairs)  # (K', 2, P), once per stage
        self.rows, self.pending = [], None

    def batch(self, stage_id: str, ids: list[int], seed: int, global_step: int) -> None:
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        factors = ggn_factors(self.module, params, self.task.batch(stage_id, ids), seed,
                              self.layout, self.spec.samples,
                              step_generator(self.spec, global_step))
        self.pending = (self.sketch.project_blocks(factors).to(self.dtype),
                        tensor_dots(factors, self.stacked, self.layout))
        seed_step(seed)

    def step_done(self) -> None:
        if self.rows and self.pending is not None and \
                self.pending[0].shape != self.rows[0][0].shape:
            raise EstimatorError(
                "samples='exact' logs one factor per output of the batch, so it needs the "
                "same batch size at every step of a stage; use a number of samples")
        if self.rows is not None and self.pending is not None:
            self.rows.append(self.pending)
        else:
            self.rows = None  # a step without a logged batch: no sketch for this stage
        self.pending = None

    def tensors(self) -> dict[str, torch.Tensor] | None:
        if not self.rows:
            return None
        return {"factors": torch.stack([f for f, _ in self.rows]),
                "dots": torch.stack([d for _, d in self.rows])}


def displacement_pair(stage: Any, carried: bool, root: Any, layout: ParamLayout) -> torch.Tensor:
    """(2, P): D_k and M_k of a finished stage (M_k = 0 unless the next stage carries)."""
    change = load_flat(layout, stage.theta_end, root) - load_flat(layout, stage.theta_start, root)
    return torch.stack([change, momentum_change(stage, carried, root, layout)])
