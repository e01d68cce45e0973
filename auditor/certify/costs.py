"""What an estimator costs against replay, in training-step equivalents, before it runs.

``aa``, ``naive`` and ``tracin`` differentiate the behaviours at a few points: next to no
training steps. The curvature-aware estimators (``aa-ggn``, ``aa-hessian``) unroll every recorded
step of the factual run with curvature-vector products — measured at 2.6–7× the cost of the
full leave-stage-out replay on the shipped scenarios (docs/fidelity.md) — so their cost is taken
as ``UNROLL_FACTOR`` step-equivalents per recorded step. The full replay costs Σ_k (steps of the
stages after k). When that is the smaller, replaying every stage is both exact and cheaper.
"""

from __future__ import annotations

UNROLL_FACTOR = 3.0  # step-equivalents per recorded step of an unrolled curvature estimator
UNROLLED = ("aa-ggn", "aa-hessian")


def estimator_steps(estimator: str, settings: dict, steps: list[int]) -> float:
    if estimator in UNROLLED and not settings.get("projection"):
        return UNROLL_FACTOR * sum(steps)
    return 0.0


def full_replay_steps(steps: list[int]) -> int:
    return int(sum(sum(steps[k + 1:]) for k in range(len(steps))))


def replay_all_is_cheaper(estimator: str, settings: dict, steps: list[int]) -> str | None:
    """The message saying so, when replaying every stage costs no more than the estimator."""
    own, full = estimator_steps(estimator, settings, steps), full_replay_steps(steps)
    if own > 0 and full <= own:
        return (f"replaying every stage ({full:,} steps) costs less than {estimator} "
                f"(~{own:,.0f} step-equivalents): replaying everything, every verdict exact")
    return None
