"""Severities, waivers and their expiry, INDETERMINATE cases, and what is written to the store."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pytest
from gatehelpers import add_scored, one_rule, tagged_version

from auditor.policy.evaluate import gate

TODAY = date(2026, 11, 29)
TOX = {"tox": [-0.2, 0.6, 0.2]}
BLOCK = "direction: harm\nmetric: contribution\ncomparator: '>'\nthreshold: 0.3\n"
DECLARED = "behaviours:\n  tox: {direction: harm}\n  bias: {direction: harm}\n"


@pytest.fixture
def scored(store):
    add_scored(store, tagged_version(), TOX)
    return store


def outcomes(result):
    return {(r["behaviour"], r["stage_id"]): r["outcome"] for r in result.rows()}


@pytest.mark.parametrize(("severity", "outcome", "verdict", "code"), [
    ("block", "fail", "FAIL", 1), ("warn", "warn", "PASS", 0), ("info", "info", "PASS", 0)])
def test_severity_decides_what_firing_means(scored, write_policy, severity, outcome, verdict,
                                            code):
    result = gate(scored, "m@v1", write_policy(one_rule(BLOCK + f"severity: {severity}")),
                  today=TODAY)
    assert outcomes(result)[("tox", "s1")] == outcome
    assert result.verdict == verdict and result.exit_code == code


def waiver(stage="s1", version="m@v1", expires="2026-12-31"):
    lines = ["waivers:", "  - rule: r1", "    owner: ana@example.org",
             "    reason: vendor retrains in Q1", f"    expires: {expires}"]
    if stage:
        lines.append(f"    stage: {stage}")
    if version:
        lines.append(f"    version: {version}")
    return "\n".join(lines) + "\n"


def test_waiver_turns_a_failure_into_pass_with_waivers(scored, write_policy):
    result = gate(scored, "m@v1", write_policy(one_rule(BLOCK, extra=waiver())), today=TODAY)
    row = next(r for r in result.rows() if r["stage_id"] == "s1")
    assert row["outcome"] == "waived" and row["waiver_owner"] == "ana@example.org"
    assert row["waiver_expiry"] == date(2026, 12, 31)
    assert result.verdict == "PASS-WITH-WAIVERS" and result.exit_code == 0


def test_waiver_is_valid_through_its_expiry_day(scored, write_policy):
    policy = write_policy(one_rule(BLOCK, extra=waiver(expires="2026-11-29")))
    assert gate(scored, "m@v1", policy, today=TODAY).verdict == "PASS-WITH-WAIVERS"
    assert gate(scored, "m@v1", policy, today=date(2026, 11, 30)).verdict == "FAIL"


def test_expired_waiver_does_not_apply_and_is_reported(scored, write_policy):
    policy = write_policy(one_rule(BLOCK, extra=waiver(expires="2026-11-01")))
    result = gate(scored, "m@v1", policy, today=TODAY)
    row = next(r for r in result.rows() if r["stage_id"] == "s1")
    assert row["outcome"] == "fail" and "expired 2026-11-01" in row["reason"]
    assert result.verdict == "FAIL"
    assert [w["owner"] for w in result.expired_waivers] == ["ana@example.org"]


@pytest.mark.parametrize(("stage", "version", "verdict"), [
    ("s2", "m@v1", "FAIL"),  # another stage
    ("s1", "m@v9", "FAIL"),  # another version
    (None, "m@v1", "PASS-WITH-WAIVERS"),  # every stage of the version
    ("s1", None, "PASS-WITH-WAIVERS"),  # that stage in every version
])
def test_waiver_scope(scored, write_policy, stage, version, verdict):
    policy = write_policy(one_rule(BLOCK, extra=waiver(stage=stage, version=version)))
    assert gate(scored, "m@v1", policy, today=TODAY).verdict == verdict


def test_unscored_behaviour_is_indeterminate(scored, write_policy):
    text = one_rule("behaviours: [tox, bias]\nmetric: contribution\ncomparator: '>'\n"
                    "threshold: 5", behaviours=DECLARED)
    result = gate(scored, "m@v1", write_policy(text), today=TODAY)
    row = next(r for r in result.rows() if r["behaviour"] == "bias")
    assert row["outcome"] == "indeterminate" and row["observed"] is None
    assert "not scored" in row["reason"]
    assert result.verdict == "INDETERMINATE" and result.exit_code == 1
    allowed = gate(scored, "m@v1", write_policy(text), today=TODAY, allow_indeterminate=True)
    assert allowed.verdict == "INDETERMINATE" and allowed.exit_code == 0


def test_scores_under_another_configuration_are_stale(store, write_policy):
    version = tagged_version()
    add_scored(store, version, {"tox": [0.0, 0.0, 0.0], "bias": [0.1, 0.1, 0.1]},
               config_hash="cfg-old")
    store.record_run("audit", {}, scores=_scores(version, {"tox": [0.0, 0.9, 0.0]}, "cfg-new"))
    text = one_rule("behaviours: [tox, bias]\nmetric: contribution\ncomparator: '>'\n"
                    "threshold: 0.5", behaviours=DECLARED)
    result = gate(store, "m@v1", write_policy(text), today=TODAY)
    assert result.config_hash == "cfg-new"  # the latest run's configuration
    bias = next(r for r in result.rows() if r["behaviour"] == "bias")
    assert bias["outcome"] == "indeterminate" and "naive/cfg-old" in bias["reason"]
    assert outcomes(result)[("tox", "s1")] == "fail"
    assert result.verdict == "FAIL"  # a definite failure outweighs an undecided rule


def _scores(version, effects, config):
    from gatehelpers import score_table

    return score_table(version, effects, config_hash=config)


def test_nan_effect_is_indeterminate_where_it_matters(store, write_policy):
    add_scored(store, tagged_version(), {"tox": [np.nan, 0.6, 0.2]})
    contribution = gate(store, "m@v1", write_policy(one_rule(BLOCK)), today=TODAY)
    assert outcomes(contribution) == {("tox", "s0"): "indeterminate", ("tox", "s1"): "fail",
                                      ("tox", "s2"): "pass"}
    share = gate(store, "m@v1", write_policy(one_rule(
        "direction: harm\nmetric: share\ncomparator: '>'\nthreshold: 0.5")), today=TODAY)
    assert set(outcomes(share).values()) == {"indeterminate"}
    assert share.verdict == "INDETERMINATE"


def test_no_scores_at_all_is_indeterminate(store, write_policy):
    with store.transaction():
        store.add_version(tagged_version())
    result = gate(store, "m@v1", write_policy(one_rule(BLOCK)), today=TODAY)
    assert result.verdict == "INDETERMINATE" and result.estimator is None
    assert "no scores at all" in result.rows()[0]["reason"]


def test_delta_is_indeterminate_when_previous_did_not_score_the_behaviour(store, write_policy):
    add_scored(store, tagged_version(version="v1", day=1), {"other": [0.1, 0.1, 0.1]})
    add_scored(store, tagged_version(version="v2", day=2), TOX)
    result = gate(store, "m@v2", write_policy(one_rule(
        "direction: harm\nmetric: delta_vs_previous\ncomparator: '>'\nthreshold: 0.3")),
        today=TODAY)
    assert set(outcomes(result).values()) == {"indeterminate"}


def test_estimator_requirement(scored, write_policy):
    needs_aa = BLOCK + "requires: {estimators: [aa, aa-ggn]}"
    result = gate(scored, "m@v1", write_policy(one_rule(needs_aa)), today=TODAY)
    (row,) = result.rows()
    assert row["outcome"] == "indeterminate" and "'naive'" in row["reason"]
    accepted = gate(scored, "m@v1", write_policy(one_rule(needs_aa.replace("aa-ggn", "naive"))),
                    today=TODAY)
    assert accepted.verdict == "FAIL"


def test_fidelity_requirement_needs_a_passed_replay_check(scored, write_policy):
    policy = write_policy(one_rule(BLOCK, extra="requires: {fidelity: passed}\n"))
    assert gate(scored, "m@v1", policy, today=TODAY).verdict == "INDETERMINATE"
    # a passed check of other settings, then a failed one of these: still not evaluated
    for passed, config, verdict in ((True, "cfg-other", "INDETERMINATE"),
                                    (False, "cfg-a", "INDETERMINATE"), (True, "cfg-a", "FAIL")):
        scored.record_run("fidelity", {"passed": passed}, fidelity_checks=pa.Table.from_pylist([{
            "model": "m", "version": "v1", "estimator": "naive", "config_hash": config,
            "stages_checked": 3, "behaviours_checked": 1, "pearson": 0.9,
            "sign_agreement": 1.0, "max_abs_error": 0.01, "passed": passed,
            "checked_at": datetime(2026, 11, 2)}]))
        assert gate(scored, "m@v1", policy, today=TODAY).verdict == verdict, (passed, config)


def test_results_and_verdict_are_written_in_one_run(scored, write_policy):
    result = gate(scored, "m@v1", write_policy(one_rule(BLOCK)), today=TODAY)
    stored = scored.policy_results("m", "v1").to_pylist()
    assert len(stored) == result.results.num_rows == 3
    assert {r["run_id"] for r in stored} == {result.run_id}
    assert {r["policy_hash"] for r in stored} == {result.policy_hash}
    (verdict,) = scored.verdicts("m", "v1").to_pylist()
    assert verdict["verdict"] == "FAIL" and verdict["run_id"] == result.run_id
    run = scored.query("SELECT kind, status FROM runs WHERE run_id = ?", [result.run_id])
    assert run == [{"kind": "policy", "status": "complete"}]
    assert scored.verify_log().ok


def test_dry_evaluation_writes_nothing(scored, write_policy):
    result = gate(scored, "m@v1", write_policy(one_rule(BLOCK)), today=TODAY, write=False)
    assert result.run_id is None and scored.policy_results().num_rows == 0


def test_a_rescored_version_is_read_from_its_latest_run(store, write_policy):
    version = tagged_version()
    add_scored(store, version, {"tox": [0.0, 0.9, 0.0], "bias": [0.5, 0.0, 0.0]})
    store.record_run("audit", {}, scores=_scores(version, {"tox": [0.0, 0.1, 0.0]}, "cfg-a"))
    text = one_rule("behaviours: [tox, bias]\nmetric: contribution\ncomparator: '>'\n"
                    "threshold: 0.3", behaviours=DECLARED)
    result = gate(store, "m@v1", write_policy(text), today=TODAY)
    assert result.results.num_rows == 6  # no duplicated rows
    assert outcomes(result) == {("tox", "s0"): "pass", ("tox", "s1"): "pass",
                                ("tox", "s2"): "pass", ("bias", "s0"): "fail",
                                ("bias", "s1"): "pass", ("bias", "s2"): "pass"}
