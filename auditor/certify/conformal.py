"""Split-conformal bands on estimated stage effects, calibrated on replayed units.

A replay unit (version, stage k) gives the exact effect of k on every behaviour. For a sampled
unit, the residual of behaviour q is ``est − exact``; divided by a scale known from the estimate
alone (``NORMALISATIONS``) it becomes a score ``s = |est − exact| / scale``. With n exchangeable
scores and miscoverage α, ``q`` is the ⌈(n+1)(1−α)⌉-th smallest score (infinite when that rank
exceeds n, i.e. when n < ⌈1/α⌉ − 1) and the band of a new estimate is ``est ± q·scale``.

Pure functions of numpy arrays: no torch, no store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from auditor.policy.decide import UNCALIBRATED_NOTE

NORMALISATIONS = ("absolute", "relative", "behaviour")
POOLINGS = ("pair", "unit")  # a score per (stage, behaviour) pair, or one (the max) per unit
EPSILON = 1e-3  # floor of a scale, in the behaviour's own units


def min_scores(alpha: float) -> int:
    """The fewest calibration scores that give a finite band at miscoverage ``alpha``."""
    return math.ceil(1.0 / alpha - 1e-12) - 1


def conformal_quantile(scores: Sequence[float] | np.ndarray, alpha: float) -> float:
    """The ⌈(n+1)(1−α)⌉-th smallest score; ``inf`` when there are too few scores."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), not {alpha}")
    values = np.sort(np.asarray(scores, dtype=float))
    values = values[np.isfinite(values)] if len(values) else values
    rank = math.ceil((len(values) + 1) * (1.0 - alpha) - 1e-12)
    if rank > len(values) or rank < 1:
        return math.inf
    return float(values[rank - 1])


def scales(estimates: np.ndarray, normalisation: str, epsilon: float = EPSILON) -> np.ndarray:
    """The scale of each estimated effect (K × Q, stages × behaviours of one version), from the
    estimate alone so that every row has one: ``absolute`` 1; ``relative`` |est| + ε;
    ``behaviour`` the largest |est| of the behaviour over the version's stages, + ε."""
    est = np.abs(np.nan_to_num(np.asarray(estimates, dtype=float), nan=0.0))
    if normalisation == "absolute":
        return np.ones_like(est)
    if normalisation == "relative":
        return est + epsilon
    if normalisation == "behaviour":
        return np.broadcast_to(est.max(axis=0, keepdims=True) + epsilon, est.shape).copy()
    raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, "
                     f"not {normalisation!r}")


@dataclass(frozen=True)
class UnitSample:
    """One replayed calibration unit: the estimated and exact effects of its stage on every
    behaviour, and the scales of its estimates."""

    version: str
    stage_index: int
    stage_id: str
    stage_kind: str
    estimate: np.ndarray  # (Q,)
    exact: np.ndarray  # (Q,)
    scale: np.ndarray  # (Q,)

    def scores(self, pooling: str) -> np.ndarray:
        s = np.abs(self.estimate - self.exact) / self.scale
        s = s[np.isfinite(s)]
        if pooling == "unit":
            return np.array([s.max()]) if len(s) else s
        return s


@dataclass(frozen=True)
class Calibration:
    """A band per stratum (``q`` multiplies a row's scale), with what it was computed from."""

    estimator: str
    config_hash: str
    alpha: float
    normalisation: str
    pooling: str
    strata: str  # "kind" | "none"
    units: tuple[tuple[str, str, str], ...]  # (version, stage id, stage kind) sampled
    residuals: tuple[float, ...]  # est − exact of every sampled pair, in unit order
    q: dict[str, float] = field(default_factory=dict)  # stratum ("*" = pooled) -> band
    n: dict[str, int] = field(default_factory=dict)  # stratum -> calibration scores
    coverage: dict[str, float] = field(default_factory=dict)  # leave-one-unit-out, per stratum
    fallback: str = "none"  # a stratum without its own band: "none" (infinite) or "pooled"
    source: str = "replay"  # "replay" (this audit's units) or "benchmark" (auditor.certify.fallback)

    @property
    def note(self) -> int | str:
        """What a row's evidence says of the band: the replayed units it was calibrated on, or
        that it was not calibrated on this model."""
        if self.source == "replay":
            return self.n_units
        return UNCALIBRATED_NOTE

    @property
    def target(self) -> float:
        return 1.0 - self.alpha

    def band(self, stage_kind: str | None) -> tuple[float, str]:
        """(q, the stratum it came from) for a stage: its kind's band when that stratum holds
        enough scores; else infinite (the row goes to replay), or with ``fallback="pooled"``
        the band pooled over the other kinds — measured to under-cover early stages badly
        (docs/certify.md), so not the default."""
        key = stratum_of(stage_kind, self.strata)
        if key in self.q and math.isfinite(self.q[key]):
            return self.q[key], key
        if self.fallback == "pooled" or key == "*":
            return self.q.get("*", math.inf), "*"
        return math.inf, key

    @property
    def n_units(self) -> int:
        return len(self.units)


def stratum_of(stage_kind: str | None, strata: str) -> str:
    return (stage_kind or "?") if strata == "kind" else "*"


def calibrate(samples: Sequence[UnitSample], *, estimator: str, config_hash: str,
              alpha: float = 0.1, normalisation: str = "relative", pooling: str = "pair",
              strata: str = "kind", fallback: str = "none") -> Calibration:
    """Bands from replayed units: one per stratum with enough scores, and a pooled one."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    grouped: dict[str, list[UnitSample]] = {"*": list(samples)}
    if strata == "kind":
        for sample in samples:
            grouped.setdefault(stratum_of(sample.stage_kind, strata), []).append(sample)
    q, n, coverage = {}, {}, {}
    for key, members in grouped.items():
        scores = [s.scores(pooling) for s in members]
        pooled = np.concatenate(scores) if scores else np.zeros(0)
        q[key], n[key] = conformal_quantile(pooled, alpha), int(len(pooled))
        coverage[key] = leave_one_unit_out(scores, alpha)
    residuals = tuple(float(r) for s in samples for r in (s.estimate - s.exact))
    units = tuple((s.version, s.stage_id, s.stage_kind) for s in samples)
    return Calibration(estimator, config_hash, alpha, normalisation, pooling, strata, units,
                       residuals, q, n, coverage, fallback)


def leave_one_unit_out(scores: Sequence[np.ndarray], alpha: float) -> float:
    """Coverage of each unit's scores by the band calibrated on the other units (NaN with
    fewer than two units): the honest estimate of how a new unit is covered."""
    if len(scores) < 2:
        return math.nan
    covered = total = 0
    for i, held in enumerate(scores):
        rest = np.concatenate([s for j, s in enumerate(scores) if j != i])
        band = conformal_quantile(rest, alpha)
        covered += int(np.sum(held <= band))
        total += len(held)
    return covered / total if total else math.nan


def intervals(estimates: np.ndarray, scale: np.ndarray, q: np.ndarray | float
              ) -> tuple[np.ndarray, np.ndarray]:
    """[est − q·scale, est + q·scale]; infinite where q is."""
    width = np.where(np.isinf(q), np.inf, np.asarray(q) * scale)
    return estimates - width, estimates + width
