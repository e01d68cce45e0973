"""Fallback bands where replay is impossible (an imported lineage without batch logs, no task):
the band comes from the estimator's measured error on the shipped benchmark scenarios
(docs/certify.md, "Fallback bands"), and every row it decides says "not calibrated on this
model".

``benchmark_bands.json`` (beside this module, written by ``python bench/certify.py
--write-fallback``) holds, per estimator configuration (name, config hash, normalisation) and
stage kind, the conformal scores ``|est − exact| / scale`` of every unit of every benchmark
scenario. The fallback calibration takes their split-conformal quantile at the requested
coverage, one band per stage kind; a kind the benchmark never saw gets an infinite band, and an
estimator configuration it never measured gets none (the rows stay ``uncalibrated``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from auditor.certify.conformal import UNCALIBRATED_NOTE, Calibration, conformal_quantile

BANDS_FILE = Path(__file__).with_name("benchmark_bands.json")
BENCHMARK = "benchmark"
NOTE = UNCALIBRATED_NOTE
FORMAT = 1


def load_entries(path: Path = BANDS_FILE) -> list[dict]:
    """The file's entries; none when it is absent or of another format."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return []
    return [e for e in data.get("entries", []) if isinstance(e, dict)]


def write_entries(entries: list[dict], written_by: str, path: Path = BANDS_FILE) -> None:
    """Replace the entries of the same (estimator, config hash, normalisation, stage kind)."""
    keys = {_key(e) for e in entries}
    kept = [e for e in load_entries(path) if _key(e) not in keys]
    merged = sorted(kept + entries, key=_key)
    lines = ",\n".join(json.dumps(e, sort_keys=True) for e in merged)  # one entry a line
    Path(path).write_text(f'{{"format": {FORMAT}, "written_by": {json.dumps(written_by)},\n'
                          f'"entries": [\n{lines}\n]}}\n')


def _key(entry: dict) -> tuple:
    return (entry["estimator"], entry["config_hash"], entry["normalisation"],
            entry["stage_kind"])


def benchmark_calibration(estimator: str, config_hash: str, *, alpha: float,
                          normalisation: str = "behaviour", path: Path = BANDS_FILE
                          ) -> Calibration | None:
    """A calibration of source ``benchmark`` for this estimator configuration, or None."""
    found = [e for e in load_entries(path) if e.get("estimator") == estimator
             and e.get("config_hash") == config_hash
             and e.get("normalisation") == normalisation]
    if not found:
        return None
    q, n, pooled = {}, {}, []
    for entry in found:
        scores = [float(s) for s in entry.get("scores", []) if math.isfinite(float(s))]
        q[entry["stage_kind"]] = conformal_quantile(scores, alpha)
        n[entry["stage_kind"]] = len(scores)
        pooled += scores
    q["*"], n["*"] = conformal_quantile(pooled, alpha), len(pooled)
    scenarios = sorted({s for e in found for s in e.get("scenarios", [])})
    return Calibration(estimator, config_hash, alpha, normalisation, "pair", "kind",
                       tuple((s, "", "") for s in scenarios), (), q, n,
                       {k: float(e["held_out_coverage"]) for e in found
                        if isinstance(e.get("held_out_coverage"), (int, float))
                        for k in [e["stage_kind"]]},
                       "none", BENCHMARK)
