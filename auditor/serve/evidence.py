"""Evidence kinds of stage scores: ``exact`` (replay), ``estimate`` (with a calibrated band
``lo``–``hi``) or ``uncalibrated``.

Stores written before certified verdicts have no ``evidence``/``lo``/``hi`` columns; there the
kind is derived: the ``replay`` estimator is exact, every other estimate is uncalibrated.
"""

from __future__ import annotations

import math
from typing import Any

from auditor.store import Store

EXACT, ESTIMATE, UNCALIBRATED = "exact", "estimate", "uncalibrated"
KINDS = (EXACT, ESTIMATE, UNCALIBRATED)
_DERIVED = f"CASE WHEN estimator = 'replay' THEN '{EXACT}' ELSE '{UNCALIBRATED}' END"


def score_columns(store: Store) -> set[str]:
    return {row["column_name"] for row in store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'stage_scores'")}


def evidence_sql(columns: set[str], alias: str = "") -> tuple[str, str, str]:
    """SQL expressions (kind, lo, hi) for a stage_scores row, whichever schema the store has."""
    prefix = f"{alias}." if alias else ""
    if {"evidence", "lo", "hi"} <= columns:
        derived = _DERIVED.replace("estimator", f"{prefix}estimator")
        return (f"coalesce({prefix}evidence, {derived})", f"{prefix}lo", f"{prefix}hi")
    return _DERIVED.replace("estimator", f"{prefix}estimator"), "NULL::DOUBLE", "NULL::DOUBLE"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def row_evidence(row: dict[str, Any]) -> dict[str, Any]:
    """The evidence of one stage_scores row (as read with ``SELECT *``): kind, band half-width
    (None when the kind has no band), and the mark printed next to its number."""
    kind = row.get("evidence") or (EXACT if row.get("estimator") == "replay" else UNCALIBRATED)
    lo, hi = _finite(row.get("lo")), _finite(row.get("hi"))
    band = (hi - lo) / 2 if kind == ESTIMATE and lo is not None and hi is not None else None
    return {"kind": kind if kind in KINDS else UNCALIBRATED, "band": band,
            "lo": lo, "hi": hi, "mark": mark(kind, band)}


def mark(kind: str, band: float | None) -> str:
    if kind == EXACT:
        return "exact"
    if kind == ESTIMATE:
        return f"± {band:.3g}" if band is not None else "estimate"
    return "uncalibrated"


def summary(counts: dict[str, int], band: float | None) -> dict[str, Any]:
    """One version's evidence in a word: exact when every score is, estimate ± the widest band
    when none is uncalibrated, else uncalibrated; with the count of each kind."""
    counts = {kind: int(counts.get(kind) or 0) for kind in KINDS}
    if not sum(counts.values()):
        return {"kind": None, "band": None, "counts": counts, "label": "not scored"}
    if counts[UNCALIBRATED]:
        kind = UNCALIBRATED
    elif counts[ESTIMATE]:
        kind = ESTIMATE
    else:
        kind = EXACT
    band = _finite(band) if kind == ESTIMATE else None
    label = mark(kind, band) if kind != EXACT else "exact"
    if kind == ESTIMATE and counts[EXACT]:
        label += f" ({counts[EXACT]} exact)"
    if kind == UNCALIBRATED and (counts[EXACT] or counts[ESTIMATE]):
        label += f" ({counts[EXACT]} exact, {counts[ESTIMATE]} estimate)"
    return {"kind": kind, "band": band, "counts": counts, "label": label}
