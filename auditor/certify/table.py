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
    calibrated: bool = False

    def units(self) -> list[Unit]:
        costs = unit_costs(self.steps)
        return [Unit(self.key, k, s, kind, costs[k])
                for k, (s, kind) in enumerate(zip(self.stage_ids, self.stage_kinds))]

    @property
    def effects(self) -> np.ndarray:
        """The best number of each row: exact where replayed, else the estimate."""
        values = self.estimate.astype(float).copy()
        for k, row in self.exact.items():
            values[k] = row
        return values

    def evidence(self) -> np.ndarray:
        kinds = np.full(self.estimate.shape, "estimate" if self.calibrated else "uncalibrated",
                        dtype=object)
        for k in self.exact:
            kinds[k] = "exact"
        return kinds

    def apply_band(self, calibration: Calibration | None, calibration_id: str | None) -> None:
        """lo/hi of every row: exact rows lo = hi; estimates est ± q·scale from the
        calibration of their stage's stratum; without a calibration NaN (points)."""
        self.calibrated, self.calibration_id = calibration is not None, calibration_id
        if calibration is None:
            self.lo = np.full(self.estimate.shape, np.nan)
            self.hi = np.full(self.estimate.shape, np.nan)
        else:
            scale = scales(self.estimate, calibration.normalisation)
            q = np.array([[calibration.band(kind)[0]] for kind in self.stage_kinds])
            width = np.where(np.isinf(q), np.inf, q * scale)
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
