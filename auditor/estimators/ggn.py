"""``aa-ggn``: the unrolled estimator with empirical-Fisher (Gauss–Newton-type) curvature.

G_t v = |B_t|⁻¹ Σ_z ∇ℓ_z (∇ℓ_zᵀ v), computed as one jvp and one vjp of the per-example losses
(``task.loss(..., reduction="none")``). G_t is positive semi-definite, so the propagation
contracts ("forgetting") and stays stable over long early stages where the exact, indefinite
Hessian can blow up. Same forward / reverse modes as ``aa-hessian``.
"""

from __future__ import annotations

from typing import ClassVar

from auditor.estimators.curvature import fisher_operator
from auditor.estimators.hessian import UnrolledEstimator
from auditor.estimators.unrolled import OperatorFactory


class GGNEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-ggn"
    version: ClassVar[str] = "1"
    operator: ClassVar[OperatorFactory] = staticmethod(fisher_operator)
    reduction: ClassVar[str] = "none"
