"""Printable views of a version's results: contributions per behaviour, policy outcomes,
remediation advice. Inputs are evidence rows (``auditor.report.evidence``)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from auditor.policy.outcomes import worst_outcome

_STAGE_METRICS = ("effect", "share")


def _harm(row: dict[str, Any]) -> float:
    effect = row["effect"] or 0.0
    return effect if row["direction"] == "harm" else -effect


def _is_finite(effect: float | None) -> bool:
    """False for a NaN effect (``None`` in evidence rows) and for ±Inf."""
    return effect is not None and math.isfinite(effect)


def _rank_key(row: dict[str, Any]) -> tuple[int, float]:
    """Order of the gate's ``rank() OVER (ORDER BY harm DESC)``: a NaN effect (None in evidence
    rows) sorts above every number."""
    return (1, 0.0) if row["effect"] is None else (0, _harm(row))


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in stage order with their harm, the rank the gate evaluated (ties share one) and
    the evidence mark printed beside the effect."""
    keys = [_rank_key(row) for row in rows]
    return [row | {"rank": 1 + sum(other > key for other in keys), "harm": _harm(row),
                   "evidence_mark": evidence_mark(row)}
            for row, key in sorted(zip(rows, keys), key=lambda pair: pair[0]["stage_index"])]


def evidence_mark(row: dict[str, Any]) -> str:
    """"exact" for a replayed effect, "± w" for an estimate with its calibrated band (w the
    half-width; "± ∞" when the band is unbounded), "uncalibrated" for an estimate without one."""
    kind = row.get("evidence") or ("exact" if row.get("estimator") == "replay" else "uncalibrated")
    if kind != "estimate":
        return kind
    lo, hi = row.get("lo"), row.get("hi")
    if lo is None or hi is None:
        return "uncalibrated"
    width = (hi - lo) / 2
    return "± ∞" if not math.isfinite(width) else f"± {width:.3g}"


def _threshold(behaviour: str, policy_rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The stage-level rule on this behaviour whose metric the bar chart can draw."""
    for row in policy_rows:
        if row["behaviour"] == behaviour and row["stage_id"] and row["metric"] in _STAGE_METRICS \
                and row["threshold"] is not None:
            return {"metric": row["metric"], "value": row["threshold"], "rule": row["rule_id"],
                    "comparator": row["comparator"]}
    return None


def behaviour_results(scores: list[dict[str, Any]], previous: list[dict[str, Any]],
                      policy_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per behaviour: its stage rows (effect, share, rank), total, and change vs the previous
    audited version."""
    by_behaviour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scores:
        by_behaviour[row["behaviour"]].append(row)
    before: dict[str, float] = defaultdict(float)
    for row in previous:
        before[row["behaviour"]] += row["effect"] or 0.0
    results = []
    for name, rows in by_behaviour.items():
        finite = all(_is_finite(r["effect"]) for r in rows)
        total = sum(r["effect"] for r in rows) if finite else math.nan
        stages = _ranked(rows)
        top = [r for r in sorted(stages, key=lambda r: r["rank"]) if r["harm"] > 0][:2]
        results.append({"finite": finite,
            "name": name, "direction": rows[0]["direction"], "metric_value": rows[0]["metric_value"],
            "estimator": rows[0]["estimator"], "estimator_version": rows[0]["estimator_version"],
            "config_hash": rows[0]["config_hash"], "convention": rows[0]["convention"],
            "stages": stages, "total": total, "top": top, "threshold": _threshold(name, policy_rows),
            "previous_total": before.get(name) if previous else None,
            "change": total - before[name] if previous and name in before else None})
    return results


def _verdict(verdicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    return verdicts[-1] if verdicts else None


def policy_view(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Verdict, the rules (one line per rule: threshold, severity, worst observed, outcome), every
    evaluated row, and the waivers."""
    verdict = _verdict(verdicts)
    rules: dict[str, dict[str, Any]] = {}
    for row in rows:
        rule = rules.setdefault(row["rule_id"], {
            "rule_id": row["rule_id"], "severity": row["severity"], "behaviour": row["behaviour"],
            "metric": row["metric"], "comparator": row["comparator"],
            "threshold": row["threshold"], "reason": row["reason"],
            "outcomes": defaultdict(int), "failing": []})
        rule["outcomes"][row["outcome"]] += 1
        if row["outcome"] in ("fail", "indeterminate", "waived", "warn"):
            rule["failing"].append(row)
    for rule in rules.values():
        rule["outcome"] = _rule_outcome(rule["outcomes"])
        rule["outcomes"] = dict(rule["outcomes"])
    first = rows[0] if rows else {}
    return {
        "verdict": verdict["verdict"] if verdict else "NOT EVALUATED",
        "evaluated_at": verdict["evaluated_at"] if verdict else None,
        "policy_id": first.get("policy_id") or (verdict or {}).get("policy_id"),
        "policy_version": first.get("policy_version"),
        "policy_hash": first.get("policy_hash") or (verdict or {}).get("policy_hash"),
        "rules": list(rules.values()), "rows": rows,
        "waivers": [r for r in rows if r["waiver_owner"] or r["outcome"] == "waived"],
        "thresholds": [{k: rule[k] for k in ("rule_id", "behaviour", "metric", "comparator",
                                             "threshold", "severity")} for rule in rules.values()],
    }


def _rule_outcome(outcomes: dict[str, int]) -> str:
    return worst_outcome(outcome for outcome, count in outcomes.items() if count)


def remediation_advice(key: str, behaviours: list[dict[str, Any]], policy: dict[str, Any],
                       remediations: list[dict[str, Any]]) -> list[str]:
    """One line per stage to act on (the failing rules and behaviours it is blamed for, and the
    command that drops it), then the remediations already recorded and what they measured."""
    failing: dict[str, dict[str, list[str]]] = {}  # stage -> rule -> behaviours
    for rule in policy["rules"]:
        for row in rule["failing"]:
            if row["outcome"] != "fail":
                continue
            stage = row["stage_id"] or _top_stage(behaviours, row["behaviour"])
            if stage:
                named = failing.setdefault(stage, {}).setdefault(rule["rule_id"], [])
                named.append(row["behaviour"] or "the model")
    advice = [f"stage {stage} fails " + "; ".join(
        f"{rule_id} on {', '.join(dict.fromkeys(names))}" for rule_id, names in rules.items())
        + f": drop or re-run it (auditor remediate {key} {stage}), or re-weight its data"
        for stage, rules in failing.items()]
    for done in remediations:
        changes = ", ".join(f"{name} {done['before'].get(name, float('nan')):.4g} → {value:.4g}"
                            for name, value in done.get("after", {}).items())
        advice.append(f"remediation recorded: {done['to']} drops stage {done['dropped_stage']}"
                      f" ({changes})")
    return list(dict.fromkeys(advice)) or ["no failing rule: no remediation needed"]


def _top_stage(behaviours: list[dict[str, Any]], name: str | None) -> str | None:
    for behaviour in behaviours:
        if behaviour["name"] == name and behaviour["top"]:
            return behaviour["top"][0]["stage_id"]
    return None


def trends(versions: list[Any]) -> dict[str, Any]:
    """Across versions (in order), per model: each behaviour's metric and total effect, and each
    stage kind's summed effect per behaviour. A model's versions are the only ones that measure
    its behaviours, so each model is its own group (``models``: no column of another model's
    versions full of blanks)."""
    by_model: dict[str, list[Any]] = {}
    for version in versions:
        by_model.setdefault(version.key.split("@")[0], []).append(version)
    return {"models": [{"model": model, **_trend(group)} for model, group in by_model.items()]}


def _trend(versions: list[Any]) -> dict[str, Any]:
    labels = [v.key for v in versions]
    names = list(dict.fromkeys(b["name"] for v in versions for b in v.behaviours))
    kinds = list(dict.fromkeys(s["stage_kind"] for v in versions for b in v.behaviours
                               for s in b["stages"]))
    metric = {n: [None] * len(versions) for n in names}
    total = {n: [None] * len(versions) for n in names}
    by_kind = {n: {k: [None] * len(versions) for k in kinds} for n in names}
    for i, version in enumerate(versions):
        for b in version.behaviours:
            metric[b["name"]][i], total[b["name"]][i] = b["metric_value"], b["total"]
            for s in b["stages"]:
                previous = by_kind[b["name"]][s["stage_kind"]][i] or 0.0
                by_kind[b["name"]][s["stage_kind"]][i] = previous + (s["effect"] or 0.0)
    return {"labels": labels, "behaviours": names, "kinds": kinds, "metric": metric,
            "total": total, "by_kind": by_kind}
