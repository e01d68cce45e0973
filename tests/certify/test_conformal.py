"""Split-conformal bands on synthetic residuals of a known distribution, and interval bounds of
the policy metrics."""

import math

import numpy as np
import pytest

from auditor.certify.conformal import (
    UnitSample,
    calibrate,
    conformal_quantile,
    intervals,
    min_scores,
    scales,
)
from auditor.policy.intervals import add_bounds, compare_bounds, point_metrics


@pytest.mark.parametrize("alpha", [0.1, 0.2])
def test_coverage_on_synthetic_residuals_is_within_binomial_error(alpha):
    """Scores |r| with r ~ Student-t(3): over many seeds, a new score falls inside the band
    with probability ≥ 1 − α (and < 1 − α + 1/(n+1)), within binomial error."""
    rng = np.random.default_rng(0)
    n, trials = 19, 4000
    covered = 0
    for _ in range(trials):
        scores = np.abs(rng.standard_t(3, size=n + 1))
        covered += scores[-1] <= conformal_quantile(scores[:-1], alpha)
    rate = covered / trials
    error = 3 * math.sqrt(alpha * (1 - alpha) / trials)
    assert 1 - alpha - error <= rate <= 1 - alpha + 1 / (n + 1) + error


def test_too_few_scores_give_an_infinite_band():
    assert min_scores(0.1) == 9 and min_scores(0.2) == 4
    assert math.isinf(conformal_quantile(np.ones(8), 0.1))
    assert conformal_quantile(np.arange(1.0, 10.0), 0.1) == 9.0  # n = 9: the largest
    lo, hi = intervals(np.array([0.2]), np.array([1.0]), math.inf)
    assert lo[0] == -math.inf and hi[0] == math.inf


def test_calibration_bands_by_stratum_and_the_fallback():
    rng = np.random.default_rng(1)

    def unit(k, kind, noise):
        est = rng.normal(size=10)
        return UnitSample("m@v", k, f"s{k}", kind, est, est + noise * rng.normal(size=10),
                          scales(est[None, :], "absolute")[0])

    samples = [unit(0, "pretrain", 1.0), unit(1, "fine-tune", 0.1), unit(2, "fine-tune", 0.1)]
    cal = calibrate(samples, estimator="aa", config_hash="c", alpha=0.1,
                    normalisation="absolute", strata="kind")
    assert cal.n == {"*": 30, "pretrain": 10, "fine-tune": 20}
    assert cal.band("fine-tune")[1] == "fine-tune"
    assert cal.band("fine-tune")[0] < cal.band("pretrain")[0]
    assert math.isinf(cal.band("alignment")[0])  # no sample of its own: replay it
    pooled = calibrate(samples, estimator="aa", config_hash="c", alpha=0.1,
                       normalisation="absolute", strata="kind", fallback="pooled")
    assert pooled.band("alignment") == (pooled.q["*"], "*")
    assert 0 <= cal.coverage["*"] <= 1 and len(cal.residuals) == 30
    unit_cal = calibrate(samples, estimator="aa", config_hash="c", alpha=0.1, pooling="unit")
    assert unit_cal.n["*"] == 3 and math.isinf(unit_cal.q["*"])


def _columns(effect, lo, hi, direction="harm"):
    n = len(effect)
    m = {"behaviour_code": np.zeros(n, dtype=int), "direction": np.array([direction] * n),
         "effect": np.array(effect, float), "prev_effect": np.full(n, np.nan),
         "prev_scored": np.zeros(n, dtype=bool), "lo": np.array(lo, float),
         "hi": np.array(hi, float), "prev_lo": np.full(n, np.nan),
         "prev_hi": np.full(n, np.nan)}
    point_metrics(m, has_previous=False)
    add_bounds(m)
    return m


def test_share_rank_and_total_bounds_contain_every_point_inside_the_intervals():
    rng = np.random.default_rng(2)
    effect = np.array([0.5, 0.1, -0.2, 0.3])
    lo, hi = effect - [0.1, 0.3, 0.05, 0.0], effect + [0.2, 0.1, 0.3, 0.0]
    m = _columns(effect, lo, hi)
    for _ in range(500):
        inner = _columns(rng.uniform(lo, hi), lo * np.nan, hi * np.nan)
        for name in ("share", "rank", "total_harm"):
            assert np.all(inner[name] >= m[f"{name}_lo"] - 1e-12), name
            assert np.all(inner[name] <= m[f"{name}_hi"] + 1e-12), name


def test_exact_rows_keep_their_point_metrics_and_compare_bounds():
    m = _columns([0.6, 0.4], [0.6, 0.4], [0.6, 0.4])
    assert list(m["share_lo"]) == list(m["share_hi"]) == list(m["share"])
    sure, never = compare_bounds(">", np.array([0.6, 0.4, 0.45]), np.array([0.7, 0.5, 0.55]), 0.5)
    assert list(sure) == [True, False, False] and list(never) == [False, True, False]
