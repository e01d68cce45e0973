"""``aa-ggn``: the unrolled estimator with Gauss–Newton-type curvature (positive semi-definite).

``curvature="gauss-newton"`` (default): the generalised Gauss–Newton G_t = Jᵀ H_out J of the
task's loss (the model's output Jacobian and the loss's Hessian in the outputs); for a linear
model and squared loss it is the Hessian, so the estimator is exact there.
``curvature="fisher"``: the empirical Fisher G_t v = |B_t|⁻¹ Σ_z ∇ℓ_z (∇ℓ_zᵀ v), from the
per-example losses (``task.loss(..., reduction="none")``); needs no output split.
Both are PSD, so the propagation contracts ("forgetting") and stays stable over long early
stages where the exact, indefinite Hessian can blow up. Same forward / reverse modes as
``aa-hessian``.

``projection=d``: random projection (auditor.estimators.projected): the Gauss–Newton factors of
every step, sampled (``samples`` Rademacher vectors, or ``"exact"``) and count-sketched to at
most d coordinates per parameter tensor, read from the lineage when the recorder logged them
(``Recorder(..., sketch=SketchSpec(...))``) — then no step is re-run — else computed in one walk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from auditor.errors import EstimatorError
from auditor.estimators.base import StageEmbeddings
from auditor.estimators.common import embeddings_from_flat
from auditor.estimators.curvature import fisher_operator, gauss_newton_operator
from auditor.estimators.hessian import UnrolledEstimator
from auditor.estimators.projected import propagate_projected
from auditor.estimators.sketch import Samples, SketchSpec
from auditor.estimators.unrolled import OperatorFactory
from auditor.lineage.models import ModelVersion
from auditor.task import TrainingTask

Curvature = Literal["gauss-newton", "fisher"]
CURVATURES: dict[str, tuple[OperatorFactory, str]] = {
    "gauss-newton": (gauss_newton_operator, "mean"),
    "fisher": (fisher_operator, "none"),
}


class GGNEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-ggn"
    version: ClassVar[str] = "2"  # 1: empirical Fisher only

    def __init__(self, *args: Any, curvature: Curvature = "gauss-newton",
                 projection: int | None = None, samples: Samples | None = None,
                 sketch_seed: int | None = None, **settings: Any):
        super().__init__(*args, **settings)
        if curvature not in CURVATURES:
            raise EstimatorError(f"{self.name}: curvature must be one of "
                                 f"{', '.join(CURVATURES)}, not {curvature!r}")
        self.curvature = curvature
        self.sketch = None
        if projection is None and (samples is not None or sketch_seed is not None):
            raise EstimatorError(f"{self.name}: samples and sketch_seed are settings of the "
                                 "random projection; set projection= too")
        if projection is not None:
            self.sketch = SketchSpec(projection, 4 if samples is None else samples,
                                     sketch_seed or 0)
            if curvature != "gauss-newton" or self.plugin or self.mode == "reverse":
                raise EstimatorError(
                    f"{self.name}: projection works with curvature=gauss-newton in forward "
                    "mode and without plugin (a lifted sketch is only accurate in gradient "
                    "scores)")

    def settings(self) -> dict[str, Any]:
        settings = {**super().settings(), "curvature": self.curvature}
        if self.sketch is not None:
            settings["sketch"] = self.sketch.as_dict()
        return settings

    def prepare(self, version: ModelVersion, root: str | Path,
                task: TrainingTask) -> StageEmbeddings:
        if self.sketch is None:
            return super().prepare(version, root, task)
        started = time.perf_counter()
        problem = self.problem(version, root, task)
        flats = propagate_projected(problem, self.sketch, self.name)
        return embeddings_from_flat(self, version, problem.layout, flats, started,
                                    {"mode": "forward", "sketch": self.sketch.as_dict()})

    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        return CURVATURES[self.curvature]
