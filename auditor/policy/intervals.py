"""Metrics on intervals: every stage effect may be known only as ``[lo, hi]`` (an estimate and its
calibrated band; an exact replay has lo = hi), and the metrics rules compare propagate those
bounds conservatively (docs/certify.md, "Deciding rows on intervals").

With harm h (effect for harm behaviours, −effect for benefit ones) and x⁺ = max(x, 0):

- total harm Σ h⁺ is increasing in every h: [Σ lo⁺, Σ hi⁺];
- ``share_k = h_k⁺ / Σ_j h_j⁺`` is increasing in h_k and decreasing in every other h_j, so
  ``[lo_k⁺ / (lo_k⁺ + Σ_{j≠k} hi_j⁺), hi_k⁺ / (hi_k⁺ + Σ_{j≠k} lo_j⁺)]`` (0/0 → 0);
- ``rank_k`` (1 = most harm): best 1 + #{j : lo_j > hi_k}, worst 1 + #{j ≠ k : hi_j > lo_k};
- ``delta`` = effect − previous effect: [lo − prev_hi, hi − prev_lo].

Pure numpy: rows are grouped by ``behaviour_code``.
"""

from __future__ import annotations

import numpy as np

Columns = dict[str, np.ndarray]


def _pos(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0/0 → 0, x/inf → 0 for finite x, inf/inf → 1."""
    out = np.zeros_like(num)
    finite = np.isfinite(num) & np.isfinite(den) & (den > 0)
    out[finite] = num[finite] / den[finite]
    out[np.isinf(num)] = 1.0
    return out


def harm_bounds(direction: np.ndarray, lo: np.ndarray, hi: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    harm = direction == "harm"
    return np.where(harm, lo, -hi), np.where(harm, hi, -lo)


def add_bounds(m: Columns) -> None:
    """Add ``effect_lo/_hi``, ``total_harm_lo/_hi``, ``share_lo/_hi``, ``rank_lo/_hi`` and
    ``delta_lo/_hi`` to the metric columns ``m`` (which hold ``behaviour_code``, ``direction``,
    ``effect``, ``lo``, ``hi``, ``prev_lo``, ``prev_hi``, ``delta``, ``share``, ``rank``,
    ``total_harm``). A behaviour whose stages are all exact keeps its point metrics."""
    n = len(m["effect"])
    lo = np.where(np.isnan(m["lo"]), m["effect"], m["lo"]).astype(float)
    hi = np.where(np.isnan(m["hi"]), m["effect"], m["hi"]).astype(float)
    m["effect_lo"], m["effect_hi"] = lo, hi
    h_lo, h_hi = harm_bounds(m["direction"], lo, hi)
    out = {name: np.full(n, np.nan) for name in
           ("total_harm_lo", "total_harm_hi", "share_lo", "share_hi", "rank_lo", "rank_hi")}
    codes = m["behaviour_code"]
    for code in np.unique(codes) if n else []:
        rows = np.flatnonzero(codes == code)
        a, b = h_lo[rows], h_hi[rows]
        if np.all(a == b):  # all exact (or uncalibrated points): the SQL metrics as they are
            for name in ("total_harm", "share", "rank"):
                out[f"{name}_lo"][rows] = out[f"{name}_hi"][rows] = m[name][rows]
            continue
        pa, pb = _pos(a), _pos(b)
        sum_lo, sum_hi = pa.sum(), pb.sum()
        out["total_harm_lo"][rows], out["total_harm_hi"][rows] = sum_lo, sum_hi
        others_hi = _others(pb, sum_hi)
        others_lo = _others(pa, sum_lo)
        out["share_lo"][rows] = _ratio(pa, pa + others_hi)
        out["share_hi"][rows] = _ratio(pb, pb + others_lo)
        out["rank_lo"][rows] = 1 + (a[None, :] > b[:, None]).sum(axis=1)
        beats = b[None, :] > a[:, None]
        np.fill_diagonal(beats, False)
        out["rank_hi"][rows] = 1 + beats.sum(axis=1)
    m.update(out)
    prev_lo = np.nan_to_num(m["prev_lo"], nan=0.0)
    prev_hi = np.nan_to_num(m["prev_hi"], nan=0.0)
    undefined = np.isnan(m["delta"])
    m["delta_lo"] = np.where(undefined, np.nan, lo - prev_hi)
    m["delta_hi"] = np.where(undefined, np.nan, hi - prev_lo)


def _others(values: np.ndarray, total: float) -> np.ndarray:
    """Σ_{j≠k} values_j for every k, exact when the total is infinite."""
    if np.isfinite(total):
        return total - values
    infinite = np.isinf(values)
    finite_sum = values[~infinite].sum()
    count = infinite.sum()
    return np.where(infinite, np.where(count > 1, np.inf, finite_sum), np.inf)


def point_metrics(m: Columns, has_previous: bool) -> None:
    """The point metrics the store computes in SQL (auditor.policy.metrics), from ``effect``,
    ``direction``, ``behaviour_code``, ``prev_effect`` and ``prev_scored`` (the behaviour is
    scored in the previous version): for tables held in memory (the certify loop)."""
    n = len(m["effect"])
    harm = np.where(m["direction"] == "harm", m["effect"], -m["effect"])
    total, share, rank, nan = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool))
    codes = m["behaviour_code"]
    for code in np.unique(codes) if n else []:
        rows = np.flatnonzero(codes == code)
        h = harm[rows]
        total[rows] = _pos(h).sum()
        share[rows] = _pos(h) / total[rows] if total[rows][0] > 0 else 0.0
        rank[rows] = 1 + (h[None, :] > h[:, None]).sum(axis=1)
        nan[rows] = bool(np.any(~np.isfinite(h)))
    m["total_harm"], m["share"], m["rank"], m["behaviour_nan"] = total, share, rank, nan
    if has_previous:
        m["delta"] = np.where(m["prev_scored"], m["effect"] - np.nan_to_num(
            m["prev_effect"], nan=0.0), np.nan)
    else:
        m["delta"] = m["effect"].astype(float).copy()


def compare_bounds(comparator: str, lo: np.ndarray, hi: np.ndarray, threshold: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(holds for the whole interval, fails for the whole interval)."""
    with np.errstate(invalid="ignore"):
        if comparator == ">":
            return lo > threshold, hi <= threshold
        if comparator == ">=":
            return lo >= threshold, hi < threshold
        if comparator == "<":
            return hi < threshold, lo >= threshold
        return hi <= threshold, lo > threshold
