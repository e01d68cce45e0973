"""``aa-hessian``: the unrolled estimator with exact Hessian-vector products.

H_t v by double backward at the factual θ_t (``torch.func`` variant in
auditor.estimators.curvature.products); exact on linear regression (docs/maths.md#exactness).
Settings, modes and Adam forms: auditor.estimators.unrolled_base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from auditor.estimators.curvature.products import hessian_operator
from auditor.estimators.propagation.unrolled import OperatorFactory
from auditor.estimators.unrolled_base import UnrolledEstimator, UnrolledSettings


@dataclass(frozen=True)
class HessianSettings(UnrolledSettings):
    estimator: ClassVar[str] = "aa-hessian"


class HessianEstimator(UnrolledEstimator):
    name: ClassVar[str] = "aa-hessian"
    version: ClassVar[str] = "1"
    Settings = HessianSettings
    settings: HessianSettings

    def curvature_operator(self) -> tuple[OperatorFactory, str]:
        return hessian_operator, "mean"
