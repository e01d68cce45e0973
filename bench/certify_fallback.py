"""The fallback bands of ``bench/certify.py --write-fallback``: per estimator configuration and
stage kind, the conformal scores of every unit of every benchmark audit, written into
``auditor/certify/benchmark_bands.json`` (auditor.certify.fallback) — and, so that the file's
promise is measured rather than assumed, the coverage of each audit's exact effects by the band
calibrated on the *other* audits (leave one audit out: the situation of a model the benchmark
has never seen)."""

from __future__ import annotations

import numpy as np

from auditor.certify.conformal import NORMALISATIONS, conformal_quantile, scales
from auditor.certify.fallback import write_entries


def scores_by_kind(prepared, normalisation: str) -> dict[str, list[float]]:
    """{stage kind: |est − exact| / scale of every (stage, behaviour) of the audit}."""
    found: dict[str, list[float]] = {}
    for p in prepared:
        scale = scales(p.table.estimate, normalisation)
        s = np.abs(p.table.estimate - p.exact) / scale
        for k, kind in enumerate(p.table.stage_kinds):
            found.setdefault(kind, []).extend(float(v) for v in s[k] if np.isfinite(v))
    return found


def held_out(per_audit: dict[str, dict[str, list[float]]], alpha: float
             ) -> dict[str, tuple[int, int]]:
    """{kind: (covered, total)}: each audit's scores against the band of the other audits
    (where those give a finite band)."""
    out: dict[str, tuple[int, int]] = {}
    for name, kinds in per_audit.items():
        for kind, scores in kinds.items():
            rest = [s for other, ks in per_audit.items() if other != name
                    for s in ks.get(kind, [])]
            q = conformal_quantile(rest, alpha)
            if not np.isfinite(q):
                continue
            covered, total = out.get(kind, (0, 0))
            out[kind] = (covered + int(np.sum(np.asarray(scores) <= q)), total + len(scores))
    return out


def fallback(per_audit: dict[str, list], estimator: str, alpha: float, write: bool
             ) -> list[str]:
    """Lines to print, for every normalisation; with ``write`` the entries are written into
    the package's file."""
    lines = []
    for normalisation in NORMALISATIONS:
        lines += _fallback(per_audit, estimator, normalisation, alpha, write)
    return lines


def _fallback(per_audit: dict[str, list], estimator: str, normalisation: str, alpha: float,
              write: bool) -> list[str]:
    scored = {name: scores_by_kind(prepared, normalisation) for name, prepared in
              per_audit.items()}
    hashes = {p.config_hash for prepared in per_audit.values() for p in prepared}
    if len(hashes) != 1:
        return [f"fallback: the audits disagree on {estimator}'s config hash; nothing written"]
    config_hash = hashes.pop()
    coverage = held_out(scored, alpha)
    kinds = sorted({k for ks in scored.values() for k in ks})
    entries, lines = [], []
    for kind in kinds:
        scores = sorted(s for ks in scored.values() for s in ks.get(kind, []))
        covered, total = coverage.get(kind, (0, 0))
        entries.append({"estimator": estimator, "config_hash": config_hash,
                        "normalisation": normalisation, "stage_kind": kind,
                        "scenarios": sorted(n for n, ks in scored.items() if kind in ks),
                        "held_out_coverage": round(covered / total, 4) if total else None,
                        "scores": [round(s, 6) for s in scores]})
        q = conformal_quantile(scores, alpha)
        lines.append(f"fallback {estimator}/{normalisation} {kind}: q {q:.3g} from "
                     f"{len(scores)} scores of {len(entries[-1]['scenarios'])} audits; "
                     f"held-out coverage (leave one audit out) {covered}/{total} "
                     f"({covered / max(total, 1):.1%})")
    if write:
        write_entries(entries, "python bench/certify.py --write-fallback")
        lines.append(f"fallback: wrote {len(entries)} entries for {estimator} "
                     f"({config_hash[:12]}…) into auditor/certify/benchmark_bands.json")
    return lines
