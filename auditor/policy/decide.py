"""Deciding a rule's rows on intervals (docs/certify.md): a row fires when its comparison holds
for the whole interval of its metric (and the behaviour is material for the whole interval of
its total harm), passes when the comparison fails for the whole interval (or the behaviour is
immaterial throughout), and is *close* otherwise — INDETERMINATE with the bounds in the reason,
until a replay makes the numbers it depends on exact. Point estimates (exact or uncalibrated
rows, lo = hi) are decided exactly as before intervals existed.

Every row also says what evidence decided it: ``exact`` (every effect it uses was replayed),
``estimate ± w (n replays)`` (an estimate with its calibrated band), or ``uncalibrated``.
"""

from __future__ import annotations

import numpy as np

from auditor.policy.intervals import compare_bounds
from auditor.policy.model import Rule

METRIC_COLUMN = {"contribution": "effect", "share": "share", "rank": "rank",
                 "delta_vs_previous": "delta"}
_RANK = {"exact": 0, "estimate": 1, "uncalibrated": 2}
# the evidence note of a band taken from the benchmark scenarios, not from replays of this model
# (auditor.certify.fallback): "estimate ± w (benchmark band, not calibrated on this model)"
UNCALIBRATED_NOTE = "benchmark band, not calibrated on this model"
_KINDS = np.array(list(_RANK), dtype=object)
Chunk = dict[str, np.ndarray]


def uses_behaviour(rule: Rule) -> bool:
    """The rule's metric depends on every stage of the behaviour, not only the row's own."""
    return rule.metric in ("share", "rank") or rule.materiality > 0


def decide(rule: Rule, m: Chunk, previous: str | None, replays: dict[str, int | str]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(outcome, reason, observed, evidence text, (lo, hi) stacked) of each row of ``m``."""
    from auditor.policy.evaluate import FIRED

    column = METRIC_COLUMN[rule.metric]
    observed = m[column].astype(float)
    lo, hi = m[f"{column}_lo"].astype(float), m[f"{column}_hi"].astype(float)
    undecided = undecidable(rule, m, observed)
    if rule.materiality > 0:
        material = m["total_harm_lo"] > rule.materiality
        immaterial = m["total_harm_hi"] <= rule.materiality
    else:
        material, immaterial = np.ones(len(observed), bool), np.zeros(len(observed), bool)
    holds, fails = compare_bounds(rule.comparator, lo, hi, rule.threshold)
    fired = ~undecided & ~immaterial & material & holds
    passed = ~undecided & ~fired & (immaterial | fails)
    close = ~undecided & ~fired & ~passed
    outcome = np.select([undecided | close, fired], ["indeterminate", FIRED[rule.severity]],
                        "pass").astype(object)
    reason = np.select(
        [undecided, immaterial & ~undecided, fired],
        [_undecided_reason(rule, previous),
         f"total harm of the behaviour at or below the materiality floor {rule.materiality:g}",
         f"{rule.metric} {rule.comparator} {rule.threshold:g}"], "").astype(object)
    for i in np.flatnonzero(close):
        reason[i] = close_reason(rule, lo[i], hi[i], m, i, holds[i] or fails[i])
    evidence = evidence_text(rule, m, lo, hi, replays)
    return (outcome, reason, np.where(undecided, np.nan, observed), evidence,
            np.stack([np.where(undecided, np.nan, lo), np.where(undecided, np.nan, hi)]))


def close_reason(rule: Rule, lo: float, hi: float, m: Chunk, i: int,
                 metric_decided: bool) -> str:
    if metric_decided:  # the comparison is settled; the materiality floor is not
        return (f"close: total harm {m['total_harm_lo'][i]:.3g}–{m['total_harm_hi'][i]:.3g} "
                f"vs materiality {rule.materiality:g}")
    return f"close: {rule.metric} {lo:.3g}–{hi:.3g} vs {rule.comparator} {rule.threshold:g}"


def evidence_text(rule: Rule, m: Chunk, lo: np.ndarray, hi: np.ndarray,
                  replays: dict[str, int | str]) -> np.ndarray:
    kinds = m["evidence_behaviour"] if uses_behaviour(rule) else m["evidence"]
    out = np.empty(len(lo), dtype=object)
    for i, kind in enumerate(kinds.tolist()):
        if kind != "estimate":
            out[i] = kind
            continue
        n = _weakest_note(m["calibration_behaviour"][i], replays) if uses_behaviour(rule) \
            else replays.get(m["calibration_id"][i])  # replayed units, or a fallback's note
        count = f" ({n})" if isinstance(n, str) else f" ({n} replays)" if n is not None else ""
        out[i] = f"estimate ± {(hi[i] - lo[i]) / 2:.3g}{count}"
    return out


def behaviour_calibrations(codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per row, the calibrations of every stage of its behaviour (a share or rank uses them
    all), as one comma-joined string."""
    found: dict[int, set[str]] = {}
    for code, cid in zip(codes.tolist(), ids.tolist()):
        found.setdefault(code, set()).update([cid] if cid else [])
    joined = {code: ",".join(sorted(v)) for code, v in found.items()}
    return np.array([joined[code] for code in codes.tolist()], dtype=object)


def _weakest_note(ids: str, replays: dict[str, int | str]) -> int | str | None:
    """A band not calibrated on this model wins over any count of replays."""
    notes = [replays[c] for c in (ids or "").split(",") if c in replays]
    return next((n for n in notes if isinstance(n, str)), notes[0] if notes else None)


def worst_evidence(codes: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Per row, the weakest evidence among the rows of its behaviour (exact < estimate <
    uncalibrated)."""
    rank = np.array([_RANK.get(e, 2) for e in evidence.tolist()], dtype=int)
    worst = np.zeros(int(codes.max()) + 1 if len(codes) else 0, dtype=int)
    np.maximum.at(worst, codes, rank)
    return _KINDS[worst[codes]]


def undecidable(rule: Rule, m: Chunk, observed: np.ndarray) -> np.ndarray:
    """Rows whose observed value cannot be trusted (NaN or infinite effects, no previous
    scores): a non-finite number never passes a rule, whatever its comparator."""
    bad = ~np.isfinite(observed)
    if uses_behaviour(rule):
        bad |= m["behaviour_nan"] | ~np.isfinite(m["total_harm"])
    return bad


def _undecided_reason(rule: Rule, previous: str | None) -> str:
    if rule.metric == "delta_vs_previous":
        return (f"effect is NaN or infinite, or the behaviour is not scored in the previous "
                f"audited version {previous}")
    if uses_behaviour(rule):
        return "a stage effect of the behaviour is NaN, infinite or missing"
    return "the stage effect is NaN, infinite or missing"
