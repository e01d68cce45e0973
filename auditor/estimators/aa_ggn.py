"""``aa-ggn``: the unrolled estimator with Gauss–Newton-type curvature (positive semi-definite).

``curvature="gauss-newton"`` (default): the generalised Gauss–Newton G_t = Jᵀ H_out J of the
task's loss (the model's output Jacobian and the loss's Hessian in the outputs); for a linear
model and squared loss it is the Hessian, so the estimator is exact there.
``curvature="fisher"``: the empirical Fisher G_t v = |B_t|⁻¹ Σ_z ∇ℓ_z (∇ℓ_zᵀ v), from the
per-example losses (``task.loss(..., reduction="none")``); needs no output split.
Both are PSD, so the propagation contracts ("forgetting") and stays stable over long early
stages where the exact, indefinite Hessian can blow up. Same forward / reverse modes as
``aa-hessian``.

``projection=d``: random projection (auditor.estimators.curvature.projection): the Gauss–Newton factors of
every step, sampled (``samples`` Rademacher vectors, or ``"exact"``) and count-sketched to at
most d coordinates per parameter tensor, read from the lineage when the recorder logged them
(``Recorder(..., sketch=SketchSpec(...))``) — then no step is re-run — else computed in one walk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from auditor.errors import EstimatorError
from auditor.estimators.base import StageEmbeddings
from auditor.estimators.curvature.products import fisher_operator, gauss_newton_operator
from auditor.estimators.curvature.projection import propagate_projected
from auditor.estimators.propagation.unrolled import OperatorFactory
from auditor.estimators.records import embeddings_from_flat
from auditor.estimators.settings import setting
from auditor.estimators.unrolled_base import UnrolledEstimator, UnrolledSettings, UnrolledState
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.spec import Samples, SketchSpec
from auditor.task import TrainingTask

CURVATURES: dict[str, tuple[OperatorFactory, str]] = {
    "gauss-newton": (gauss_newton_operator, "mean"),
    "fisher": (fisher_operator, "none"),
}


@dataclass(frozen=True)
class GGNSettings(UnrolledSettings):
    estimator: ClassVar[str] = "aa-ggn"

    curvature: str = setting("gauss-newton", "gauss-newton (Jᵀ H_out J) or fisher (empirical "
                             "Fisher of the per-example losses)")
    projection: int | None = setting(None, "random projection: sketch coordinates per "
                                     "parameter tensor (SGD stages, gauss-newton, forward mode)",
                                     hashed="sketch")
    samples: Samples | None = setting(None, "projection: Rademacher samples per step, or "
                                      "exact (default 4)", hashed="sketch")
    sketch_seed: int | None = setting(None, "projection: the count sketch's seed (default 0)",
                                      hashed="sketch")

    def __post_init__(self) -> None:
        super().__post_init__()
        name = self.estimator
        if self.curvature not in CURVATURES:
            raise EstimatorError(f"{name}: curvature must be one of "
                                 f"{', '.join(CURVATURES)}, not {self.curvature!r}")
        if self.projection is None and (self.samples is not None or self.sketch_seed is not None):
            raise EstimatorError(f"{name}: samples and sketch_seed are settings of the "
                                 "random projection; set projection= too")
        if self.projection is not None:
            self.sketch  # noqa: B018 (validates the three values)
            if self.curvature != "gauss-newton" or self.plugin or self.mode == "reverse":
                raise EstimatorError(
                    f"{name}: projection works with curvature=gauss-newton in forward "
                    "mode and without plugin (a lifted sketch is only accurate in gradient "
                    "scores)")

    @property
    def sketch(self) -> SketchSpec | None:
        """The projection's sketch, or None without ``projection``."""
        if self.projection is None:
            return None
        return SketchSpec(self.projection, 4 if self.samples is None else self.samples,
                          self.sketch_seed or 0)

    def hashed(self) -> dict[str, Any]:
        hashed = super().hashed()
        sketch = self.sketch
        if sketch is not None:
            hashed["sketch"] = sketch.as_dict()
        return hashed


class GGNEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-ggn"
    version: ClassVar[str] = "2"  # 1: empirical Fisher only
    Settings = GGNSettings
    settings: GGNSettings

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        sketch = self.settings.sketch
        if sketch is None:
            return super().prepare(version, root, task)
        started = time.perf_counter()
        changed = next((s for s in version.stages if s.changes is not None), None)
        if changed is not None:
            raise EstimatorError(f"{self.name}: projection does not handle stage "
                                 f"{changed.id!r}, which changes the parameter set; leave "
                                 "projection unset")
        problem = self.problem(version, root, task)
        flats = propagate_projected(problem, sketch, self.name)
        return embeddings_from_flat(self, version, problem.layout, flats, started,
                                    ProjectedState(sketch))

    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        return CURVATURES[self.settings.curvature]


@dataclass
class ProjectedState(UnrolledState):
    """Forward mode through the random projection ``sketch``."""

    sketch: SketchSpec | None = None

    def portable(self) -> list[str]:
        return ["mode", "sketch"]
