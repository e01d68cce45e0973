"""``aa-ggn``: the unrolled estimator with Gauss–Newton-type curvature (positive semi-definite).

``curvature="gauss-newton"`` (default): the generalised Gauss–Newton G_t = Jᵀ H_out J of the
task's loss (the model's output Jacobian and the loss's Hessian in the outputs); for a linear
model and squared loss it is the Hessian, so the estimator is exact there.
``curvature="fisher"``: the empirical Fisher G_t v = |B_t|⁻¹ Σ_z ∇ℓ_z (∇ℓ_zᵀ v), from the
per-example losses (``task.loss(..., reduction="none")``); needs no output split.
Both are PSD, so the propagation contracts ("forgetting") and stays stable over long early
stages where the exact, indefinite Hessian can blow up. Same forward / reverse modes as
``aa-hessian``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from auditor.errors import EstimatorError
from auditor.estimators.curvature import fisher_operator, gauss_newton_operator
from auditor.estimators.hessian import UnrolledEstimator
from auditor.estimators.unrolled import OperatorFactory

Curvature = Literal["gauss-newton", "fisher"]
CURVATURES: dict[str, tuple[OperatorFactory, str]] = {
    "gauss-newton": (gauss_newton_operator, "mean"),
    "fisher": (fisher_operator, "none"),
}


class GGNEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-ggn"
    version: ClassVar[str] = "2"  # 1: empirical Fisher only

    def __init__(self, *args: Any, curvature: Curvature = "gauss-newton", **settings: Any):
        super().__init__(*args, **settings)
        if curvature not in CURVATURES:
            raise EstimatorError(f"{self.name}: curvature must be one of "
                                 f"{', '.join(CURVATURES)}, not {curvature!r}")
        self.curvature = curvature

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "curvature": self.curvature}

    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        return CURVATURES[self.curvature]
