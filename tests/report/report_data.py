"""Realistic stored data for report tests: versions, scores, policy results and verdicts written
through the store's public API, with outcomes computed from the scores like a policy would."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from tests.support.factories import fake_sha, make_version

PASSPHRASE = "correct horse battery staple 42"
BEHAVIOURS = (("toxicity", "harm"), ("accuracy", "benefit"))
ESTIMATOR, CONFIG = "sgd-tracin", "cfg0123456789abc"
POLICY = {"id": "release-policy", "version": "3", "hash": fake_sha("release-policy-3")}
POLICY_TEXT = """id: release-policy
version: 3
rules:
  - id: stage-toxicity-share
    behaviour: toxicity
    metric: share
    max: 0.6
    severity: block
  - id: accuracy-floor
    behaviour: accuracy
    metric: metric_value
    min: 0.8
    severity: block
"""


def _shares(effects: np.ndarray, direction: str) -> np.ndarray:
    harm = np.maximum(effects if direction == "harm" else -effects, 0.0)
    return harm / harm.sum() if harm.sum() > 0 else np.full(len(effects), np.nan)


def score_table(version, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = []
    for name, direction in BEHAVIOURS:
        effects = rng.normal(0.0, 0.3, len(version.stages))
        metric = float(rng.uniform(0.05, 0.3) if direction == "harm" else rng.uniform(0.7, 0.95))
        for k, (stage, effect, share) in enumerate(zip(version.stages, effects,
                                                       _shares(effects, direction))):
            rows.append({"model": version.model, "version": version.version, "stage_index": k,
                         "stage_id": stage.id, "stage_kind": stage.kind, "behaviour": name,
                         "direction": direction, "estimator": ESTIMATOR,
                         "estimator_version": "1", "convention": "reset", "config_hash": CONFIG,
                         "effect": float(effect), "share": float(share), "metric_value": metric})
    return pa.Table.from_pylist(rows)


def _row(version, rule, severity, behaviour, stage_id, metric, comparator, threshold, observed,
         outcome, reason, waiver=None):
    owner, why, expiry = waiver or (None, None, None)
    return {"model": version.model, "version": version.version, "policy_id": POLICY["id"],
            "policy_version": POLICY["version"], "policy_hash": POLICY["hash"], "rule_id": rule,
            "severity": severity, "behaviour": behaviour, "stage_id": stage_id, "metric": metric,
            "comparator": comparator, "threshold": threshold, "observed": observed,
            "outcome": outcome, "reason": reason, "waiver_owner": owner, "waiver_reason": why,
            "waiver_expiry": expiry, "estimator": ESTIMATOR, "config_hash": CONFIG}


def policy_rows(version, scores: pa.Table, waive: bool) -> tuple[list[dict], str]:
    rows = []
    for r in scores.to_pylist():
        if r["behaviour"] != "toxicity":
            continue
        share = r["share"] if r["share"] == r["share"] else 0.0  # NaN: no stage adds harm
        outcome = "pass" if share <= 0.6 else "fail"
        waiver = None
        if outcome == "fail" and waive:
            outcome, waiver = "waived", ("ana.lee", "accepted pending retrain", date(2027, 3, 31))
        rows.append(_row(version, "stage-toxicity-share", "block", "toxicity", r["stage_id"],
                         "share", "<=", 0.6, share, outcome,
                         "no stage may cause more than 60% of toxicity", waiver))
    accuracy = next(r["metric_value"] for r in scores.to_pylist() if r["behaviour"] == "accuracy")
    outcome, waiver = "pass" if accuracy >= 0.8 else "fail", None
    if outcome == "fail" and waive:
        outcome, waiver = "waived", ("ana.lee", "accuracy dip accepted for the pilot",
                                     date(2027, 1, 31))
    rows.append(_row(version, "accuracy-floor", "block", "accuracy", None, "metric_value", ">=",
                     0.8, accuracy, outcome,
                     "accuracy on held-out probes must stay at or above 0.8", waiver))
    outcomes = {r["outcome"] for r in rows}
    verdict = "FAIL" if "fail" in outcomes else "PASS-WITH-WAIVERS" if "waived" in outcomes \
        else "PASS"
    return rows, verdict


def add_audited_version(store, name: str, created: datetime, seed: int, *, stages: int = 3,
                        waive: bool = False, model: str = "tiny") -> str:
    version = make_version(model, name, stages=stages, created_at=created,
                           description="toy classifier for report tests")
    with store.transaction():
        store.add_version(version, source="/tmp/lineage")
        scores = score_table(version, seed)
        store.record_run("audit", {"estimator": ESTIMATOR, "seed": seed}, scores=scores)
        rows, verdict = policy_rows(version, scores, waive)
        store.record_run("gate", {"policy": POLICY["id"], "policy_text": POLICY_TEXT},
                         policy_results=pa.Table.from_pylist(rows),
                         verdicts=[{"model": model, "version": name, "policy_id": POLICY["id"],
                                    "policy_hash": POLICY["hash"], "verdict": verdict}])
    return version.key


def add_fidelity(store, key: str) -> None:
    model, version = key.split("@")
    row = {"model": model, "version": version, "estimator": ESTIMATOR, "config_hash": CONFIG,
           "stages_checked": 3, "behaviours_checked": 2, "pearson": 0.93,
           "sign_agreement": 1.0, "max_abs_error": 0.041, "passed": True,
           "checked_at": datetime(2026, 11, 20, 12, 0)}
    with store.transaction():
        store.record_run("fidelity", {"estimator": ESTIMATOR}, fidelity_checks=pa.Table.from_pylist([row]))


def populate(store, versions: int, *, start=datetime(2026, 10, 3, tzinfo=timezone.utc)) -> list[str]:
    """``versions`` audited versions of model ``tiny`` spread over 2026-Q4, plus behaviours."""
    with store.transaction():
        store.add_behaviour("toxicity", "harm", "share of toxic completions on the probe set",
                            fake_sha("toxicity-probes"))
        store.add_behaviour("accuracy", "benefit", "top-1 accuracy on held-out digits",
                            fake_sha("accuracy-probes"))
    keys = []
    for i in range(versions):
        created = start + timedelta(days=i * 80 / max(versions, 1))
        keys.append(add_audited_version(store, f"v{i + 1}", created, seed=i, waive=i % 4 == 1))
    return keys
