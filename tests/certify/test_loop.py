"""The certify loop on effects held in memory: a close row triggers the replay of the unit it
depends on and flips to the exact verdict; with no budget it stays INDETERMINATE and says why;
a blocking failure decided by an estimate is confirmed by replay."""

from datetime import date

import numpy as np
import pytest

from auditor.certify.conformal import Calibration
from auditor.certify.loop import certify
from auditor.certify.table import EffectTable
from auditor.policy.load import load_policy
from auditor.policy.metrics import ScoreContext

POLICY = """
policy: t
version: "1"
rules:
  - id: contribution
    rationale: r
    direction: harm
    metric: contribution
    comparator: ">"
    threshold: 0.1
    severity: block
  - id: share
    rationale: r
    direction: harm
    metric: share
    comparator: ">"
    threshold: 0.5
    materiality: 0.05
    stages: {kinds: [fine-tune]}
    severity: block
"""
EXACT = {0: [0.05], 1: [0.04], 2: [0.02]}  # the truth: nothing fires


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def _table(estimate, q):
    table = EffectTable("m@v1", ["pre", "ft", "last"], ["pretrain", "fine-tune", "alignment"],
                        ["harm"], ["harm"], np.array(estimate, float)[:, None], [100, 40, 10])
    cal = Calibration("aa", "c", 0.1, "absolute", "pair", "none", (), (), {"*": q},
                      {"*": 20}, {"*": 0.9})
    table.apply_band(cal, "cal-1")
    return table


def _replayer(calls):
    def replay(units):
        calls.extend(units)
        return {u.key: np.array(EXACT[u.stage_index]) for u in units}
    return replay


CONTEXT = ScoreContext("m@v1", "aa", "c", None)


def _outcomes(result):
    return {(r["rule_id"], r["stage_id"]): (r["outcome"], r["evidence"]) for r in result.rows()}


def test_a_close_row_is_replayed_and_flips_to_the_exact_verdict(policy):
    # ft's estimate 0.12 ± 0.03 straddles 0.1: close; the others are clear of it
    calls = []
    result = certify(_table([0.03, 0.12, 0.02], 0.03), None, policy, CONTEXT,
                     _replayer(calls), budget=1000, today=date(2026, 1, 1))
    outcomes = _outcomes(result)
    assert outcomes[("contribution", "ft")] == ("pass", "exact")
    assert {u.stage_id for u in calls} >= {"ft"}
    assert result.spent == sum(u.cost for u in calls)
    assert all(r["outcome"] != "indeterminate" for r in result.rows())


def test_no_budget_leaves_the_close_row_indeterminate_with_the_reason(policy):
    calls = []
    result = certify(_table([0.03, 0.12, 0.02], 0.03), None, policy, CONTEXT,
                     _replayer(calls), budget=0, today=date(2026, 1, 1))
    row = next(r for r in result.rows() if (r["rule_id"], r["stage_id"]) == ("contribution", "ft"))
    assert row["outcome"] == "indeterminate"
    assert row["reason"].startswith("close: contribution 0.09–0.15 vs > 0.1")
    assert "replay of ft needs 10 steps, budget left 0" in row["reason"]
    # the free unit (the last stage) still ran: it costs nothing
    assert [u.stage_id for u in calls] in ([], ["last"])


def test_an_estimated_failure_is_confirmed_by_replay(policy):
    calls = []
    result = certify(_table([0.03, 0.5, 0.02], 0.01), None, policy, CONTEXT,
                     _replayer(calls), budget=1000, today=date(2026, 1, 1))
    assert "ft" in {u.stage_id for u in calls}
    assert _outcomes(result)[("contribution", "ft")] == ("pass", "exact")
    unconfirmed = certify(_table([0.03, 0.5, 0.02], 0.01), None, policy, CONTEXT,
                          _replayer([]), budget=1000, confirm_fail=False,
                          today=date(2026, 1, 1))
    assert _outcomes(unconfirmed)[("contribution", "ft")][0] == "fail"


def test_an_infinite_band_sends_every_row_to_replay(policy):
    calls = []
    result = certify(_table([0.03, 0.12, 0.02], float("inf")), None, policy, CONTEXT,
                     _replayer(calls), budget=10_000, today=date(2026, 1, 1))
    assert {u.stage_id for u in calls} == {"pre", "ft", "last"}
    assert {r["evidence"] for r in result.rows()} == {"exact"}


def test_rows_whose_band_clears_the_threshold_are_decided_by_the_estimate(policy):
    calls = []
    result = certify(_table([0.0, 0.01, 0.0], 0.01), None, policy, CONTEXT,
                     _replayer(calls), budget=1000, today=date(2026, 1, 1))
    assert calls == []
    assert all(r["outcome"] == "pass" and r["evidence"].startswith("estimate ± ")
               for r in result.rows())


def test_a_unit_that_cannot_run_is_not_asked_for_twice(policy):
    calls = []

    def replay(units):
        calls.extend(units)
        return {}  # nothing could be replayed

    result = certify(_table([0.03, 0.12, 0.02], 0.03), None, policy, CONTEXT, replay,
                     budget=float("inf"), today=date(2026, 1, 1))
    assert len(calls) == len({u.key for u in calls})
    assert any(r["outcome"] == "indeterminate" for r in result.rows())


SHARE_ONLY = """
policy: s
version: "1"
rules:
  - id: share
    rationale: r
    direction: harm
    metric: share
    comparator: ">"
    threshold: 0.5
    materiality: 0.05
    stages: {kinds: [fine-tune]}
    severity: block
"""


def test_cheap_units_go_first_and_an_expensive_one_only_if_still_needed(tmp_path):
    """ft's share is close and depends on every stage; pretrain's band is infinite (its unit
    costs 50 steps). Replaying the free last stage, then ft (10 steps), decides the row: the
    pretrain unit is never replayed."""
    path = tmp_path / "s.yaml"
    path.write_text(SHARE_ONLY)
    table = EffectTable("m@v1", ["pre", "ft", "last"], ["pretrain", "fine-tune", "alignment"],
                        ["harm"], ["harm"], np.array([[0.0], [0.2], [0.1]]), [100, 40, 10])
    cal = Calibration("aa", "c", 0.1, "absolute", "pair", "kind", (), (),
                      {"*": 0.2, "fine-tune": 0.2, "alignment": 0.2},
                      {"*": 20, "fine-tune": 10, "alignment": 10}, {})
    table.apply_band(cal, "cal-1")
    exact = {0: [-1.0], 1: [0.04], 2: [0.3]}  # share of ft 0.04 / 0.34: passes
    rounds = []

    def replay(units):
        rounds.append([u.stage_id for u in units])
        return {u.key: np.array(exact[u.stage_index]) for u in units}

    result = certify(table, None, load_policy(path), CONTEXT, replay, budget=1000,
                     today=date(2026, 1, 1))
    assert rounds == [["last"], ["ft"]] and result.spent == 10
    [row] = [r for r in result.rows() if r["stage_id"] == "ft"]
    assert row["outcome"] == "pass" and row["evidence"].startswith("estimate")
