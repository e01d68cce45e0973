"""One version's stage effects as the certify loop holds them: the estimate of every (stage,
behaviour), the exact effects of the stages replayed so far, and the band of every other row."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from auditor.certify.conformal import Calibration, scales


@dataclass(frozen=True)
class Unit:
    """A replay unit: retrain stages k+1..K of ``version`` from the entry state of stage k.
    ``cost`` is its training steps (0 for the last stage: its counterfactual is its own start
    checkpoint)."""

    version: str
    stage_index: int
    stage_id: str
    stage_kind: str
    cost: int

    @property
    def key(self) -> tuple[str, int]:
        return self.version, self.stage_index


def unit_costs(steps: list[int]) -> list[int]:
    """Training steps of each stage's replay: the steps of the stages after it."""
    return [int(sum(steps[k + 1:])) for k in range(len(steps))]


@dataclass
class EffectTable:
    key: str
    stage_ids: list[str]
    stage_kinds: list[str]
    behaviours: list[str]
    directions: list[str]
    estimate: np.ndarray  # (K, Q)
    steps: list[int]  # training steps of each stage (from the lineage)
    tags: dict[str, set[str]] = field(default_factory=dict)
    exact: dict[int, np.ndarray] = field(default_factory=dict)  # stage index -> (Q,)
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    calibration_id: str | None = None
    # stages whose band came from another calibration (the benchmark's, where their units
    # cannot be replayed): stage index -> calibration id; and each calibration's evidence note
    stage_calibration: dict[int, str | None] = field(default_factory=dict)
    notes: dict[str, int | str] = field(default_factory=dict)
    calibration_note: int | str | None = None  # replayed units, or "not calibrated on this model"
    # each behaviour's value at the version's final parameters, from the estimator's rows (Q,)
    metric_values: np.ndarray | None = None

    def units(self) -> list[Unit]:
        costs = unit_costs(self.steps)
        return [Unit(self.key, k, s, kind, costs[k])
                for k, (s, kind) in enumerate(zip(self.stage_ids, self.stage_kinds))]

    @property
    def shares(self) -> np.ndarray:
        """Each stage's part of its behaviour's total harm, from the best numbers (the same
        definition as ``StageEffects.share``: NaN where no stage adds harm)."""
        signs = np.array([1.0 if d == "harm" else -1.0 for d in self.directions])
        harm = np.clip(self.effects * signs, 0.0, None)
        total = harm.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = harm / total
        share[:, ~(np.isfinite(total) & (total > 0))] = np.nan
        return share

    @property
    def effects(self) -> np.ndarray:
        """The best number of each row: exact where replayed, else the estimate."""
        values = self.estimate.astype(float).copy()
        for k, row in self.exact.items():
            values[k] = row
        return values

    def calibration_ids(self) -> list[str | None]:
        """The calibration each stage's band came from (None: no band)."""
        return [self.stage_calibration.get(k, self.calibration_id)
                for k in range(len(self.stage_ids))]

    @property
    def calibrated(self) -> bool:
        return any(c is not None for c in self.calibration_ids())

    def evidence(self) -> np.ndarray:
        kinds = np.empty(self.estimate.shape, dtype=object)
        for k, found in enumerate(self.calibration_ids()):
            kinds[k] = "exact" if k in self.exact else \
                "estimate" if found is not None else "uncalibrated"
        return kinds

    def apply_band(self, calibration: Calibration | None, calibration_id: str | None,
                   fallback: Calibration | None = None, fallback_id: str | None = None,
                   unreplayable: set[int] | frozenset[int] = frozenset()) -> None:
        """lo/hi of every row: exact rows lo = hi; estimates est ± q·scale from the
        calibration of their stage's stratum; without a calibration NaN (points). A stage in
        ``unreplayable`` that ``calibration`` gives no finite band takes ``fallback``'s (the
        benchmark's, auditor.certify.fallback)."""
        self.calibration_id = calibration_id if calibration is not None else None
        self.notes = {calibration_id: calibration.note} if calibration is not None else {}
        self.stage_calibration = {}
        q = np.full((len(self.stage_ids), 1), np.nan)
        form = calibration.normalisation if calibration is not None else None
        for k, kind in enumerate(self.stage_kinds):
            if calibration is not None:
                q[k, 0] = calibration.band(kind)[0]
            if fallback is not None and k in unreplayable and not np.isfinite(q[k, 0]):
                q[k, 0] = fallback.band(kind)[0]
                self.stage_calibration[k] = fallback_id
                self.notes[fallback_id] = fallback.note
                form = form or fallback.normalisation
        if form is None:
            self.lo = np.full(self.estimate.shape, np.nan)
            self.hi = np.full(self.estimate.shape, np.nan)
        else:
            scale = scales(self.estimate, form)
            width = np.where(np.isnan(q), np.nan, np.where(np.isinf(q), np.inf, q * scale))
            self.lo, self.hi = self.estimate - width, self.estimate + width
        for k, row in self.exact.items():
            self.lo[k], self.hi[k] = row, row

    def set_exact(self, k: int, row: np.ndarray) -> None:
        self.exact[k] = np.asarray(row, dtype=float)
        if self.lo is not None:
            self.lo[k], self.hi[k] = self.exact[k], self.exact[k]

    def width(self, k: int) -> float:
        if k in self.exact or self.lo is None:
            return 0.0
        w = self.hi[k] - self.lo[k]
        w = w[~np.isnan(w)]
        return float(w.max()) if len(w) else 0.0

    def stage_index(self, stage_id: str) -> int:
        return self.stage_ids.index(stage_id)

    @property
    def replayable_cost(self) -> int:
        return sum(unit_costs(self.steps))


def fmt_steps(steps: float) -> str:
    return "∞" if math.isinf(steps) else f"{int(steps):,}"
