"""Every metric, comparator and selector, on real scores in a real DuckDB file."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from gatehelpers import add_scored, one_rule, tagged_version

from auditor.policy.evaluate import gate

TODAY = date(2026, 11, 29)
TOX = {"tox": [-0.2, 0.6, 0.2]}  # s0 pretrain, s1 fine-tune (third-party), s2 alignment
ACC = {"acc": [0.5, -0.1, 0.05]}  # a benefit behaviour: s1 lowers it


def by_stage(result, behaviour="tox"):
    return {r["stage_id"]: (r["observed"], r["outcome"]) for r in result.rows()
            if r["behaviour"] == behaviour}


def observed(result, behaviour="tox"):
    return {stage: value for stage, (value, _) in by_stage(result, behaviour).items()}


def fired(result):
    return {(r["behaviour"], r["stage_id"]) for r in result.rows()
            if r["outcome"] in ("fail", "warn", "info")}


@pytest.fixture
def scored(store):
    add_scored(store, tagged_version(), {**TOX, **ACC}, directions={"acc": "benefit"})
    return store


def run(store, write_policy, rule, key="m@v1", **kwargs):
    return gate(store, key, write_policy(one_rule(rule)), today=TODAY, **kwargs)


def test_contribution_is_the_stage_effect(scored, write_policy):
    result = run(scored, write_policy, "direction: harm\nmetric: contribution\ncomparator: '>'\n"
                 "threshold: 0.3")
    assert observed(result) == pytest.approx({"s0": -0.2, "s1": 0.6, "s2": 0.2})
    assert fired(result) == {("tox", "s1")} and result.verdict == "FAIL"


def test_share_is_part_of_total_harm_and_signed_by_direction(scored, write_policy):
    text = one_rule("behaviours: [tox, acc]\nmetric: share\ncomparator: '>'\nthreshold: 0.5",
                    behaviours="behaviours:\n  tox: {direction: harm}\n"
                               "  acc: {direction: benefit}\n")
    result = gate(scored, "m@v1", write_policy(text), today=TODAY)
    assert observed(result) == pytest.approx({"s0": 0.0, "s1": 0.75, "s2": 0.25})
    assert observed(result, "acc") == pytest.approx({"s0": 0.0, "s1": 1.0, "s2": 0.0})
    assert fired(result) == {("tox", "s1"), ("acc", "s1")}


def test_rank_one_is_the_largest_harm(scored, write_policy):
    result = run(scored, write_policy, "direction: harm\nmetric: rank\ncomparator: '<='\n"
                 "threshold: 1")
    assert observed(result) == {"s0": 3.0, "s1": 1.0, "s2": 2.0}
    assert fired(result) == {("tox", "s1")}


def test_delta_against_previous_audited_version(store, write_policy):
    add_scored(store, tagged_version(version="v1", day=1, stages=2), {"tox": [0.1, 0.3]})
    add_scored(store, tagged_version(version="v2", day=2), {"tox": [0.15, 0.2, 0.4]})
    rule = "direction: harm\nmetric: delta_vs_previous\ncomparator: '>'\nthreshold: 0.3"
    result = run(store, write_policy, rule, key="m@v2")
    assert result.previous == "v1"
    # s2 is new since v1: it counts from zero
    assert observed(result) == pytest.approx({"s0": 0.05, "s1": -0.1, "s2": 0.4})
    assert fired(result) == {("tox", "s2")}
    first = run(store, write_policy, rule, key="m@v1")
    assert first.previous is None and observed(first) == pytest.approx({"s0": 0.1, "s1": 0.3})


def test_delta_ignores_versions_scored_under_another_configuration(store, write_policy):
    add_scored(store, tagged_version(version="v1", day=1), {"tox": [9.0, 9.0, 9.0]},
               config_hash="cfg-old")
    add_scored(store, tagged_version(version="v2", day=2), TOX)
    result = run(store, write_policy, "direction: harm\nmetric: delta_vs_previous\n"
                 "comparator: '>'\nthreshold: 0.3", key="m@v2")
    assert result.previous is None
    assert observed(result) == pytest.approx({"s0": -0.2, "s1": 0.6, "s2": 0.2})


@pytest.mark.parametrize(("comparator", "threshold", "expected"), [
    (">", 0.6, set()), (">=", 0.6, {"s1"}), ("<", -0.2, set()), ("<=", -0.2, {"s0"}),
    (">", 0.1, {"s1", "s2"}), ("<", 0.3, {"s0", "s2"}),
])
def test_comparators_at_and_around_the_boundary(scored, write_policy, comparator, threshold,
                                                expected):
    result = run(scored, write_policy, f"direction: harm\nmetric: contribution\n"
                 f"comparator: '{comparator}'\nthreshold: {threshold}")
    assert {stage for _, stage in fired(result)} == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ("{kinds: [fine-tune]}", {"s1"}),
    ("{kinds: [fine-tune, alignment]}", {"s1", "s2"}),
    ("{ids: [s2]}", {"s2"}),
    ("{names: ['s*']}", {"s0", "s1", "s2"}),
    ("{names: ['s[02]']}", {"s0", "s2"}),
    ("{dataset_tags: [third-party]}", {"s1"}),
    ("{dataset_tags: [synthetic]}", {"s0", "s2"}),
    ("{kinds: [fine-tune, alignment], names: ['*2']}", {"s2"}),
])
def test_stage_selectors(scored, write_policy, selector, expected):
    result = run(scored, write_policy, f"direction: harm\nmetric: contribution\n"
                 f"comparator: '>'\nthreshold: -10\nstages: {selector}")
    assert {stage for stage in by_stage(result)} == expected
    assert {stage for _, stage in fired(result)} == expected


def test_selector_matching_no_stage_passes_with_a_reason(scored, write_policy):
    result = run(scored, write_policy, "direction: harm\nmetric: contribution\n"
                 "comparator: '>'\nthreshold: -10\nstages: {kinds: [alignment], "
                 "dataset_tags: [third-party]}")
    (row,) = result.rows()
    assert row["stage_id"] is None and row["outcome"] == "pass"
    assert "no stage matches" in row["reason"] and result.verdict == "PASS"


def test_materiality_floor_makes_small_harm_pass(scored, write_policy):
    rule = "direction: harm\nmetric: share\ncomparator: '>'\nthreshold: 0.5\nmateriality: {}"
    below = run(scored, write_policy, rule.format(0.8))  # total harm is 0.6 + 0.2
    assert fired(below) == set() and below.verdict == "PASS"
    assert all("materiality" in r["reason"] for r in below.rows())
    above = run(scored, write_policy, rule.format(0.79))
    assert fired(above) == {("tox", "s1")} and above.verdict == "FAIL"


def test_behaviour_selection_by_direction(scored, write_policy):
    result = run(scored, write_policy, "direction: benefit\nmetric: contribution\n"
                 "comparator: '<'\nthreshold: -0.05")
    assert {r["behaviour"] for r in result.rows()} == {"acc"}
    assert fired(result) == {("acc", "s1")}


def test_kind_selector_falls_back_to_the_lineage_when_scores_lack_kinds(store, write_policy):
    from gatehelpers import score_table

    version = tagged_version()
    with store.transaction():
        store.add_version(version)
    table = score_table(version, TOX)
    table = table.set_column(table.schema.get_field_index("stage_kind"), "stage_kind",
                             pa.nulls(table.num_rows, pa.string()))
    store.record_run("audit", {}, scores=table)
    result = run(store, write_policy, "direction: harm\nmetric: contribution\ncomparator: '>'\n"
                 "threshold: -10\nstages: {kinds: [fine-tune]}")
    assert set(by_stage(result)) == {"s1"}
