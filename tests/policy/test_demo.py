"""The default policy on the real demo scenarios (trained with torch, scored with the naive
estimator): the planted stages fail, the clean and remediated versions pass."""

from __future__ import annotations

import json

import pytest

from auditor.cli import main
from auditor.demo import digits, plans, toxicity
from auditor.demo.record import record_version
from auditor.estimators.registry import attribute
from auditor.execution.rows import score_rows
from auditor.lineage.remediate import drop_stage
from auditor.paths import policies_dir
from auditor.store import Store

PLANTED = {"digits": ("vendor-ft", "patch-shortcut-gap"),
           "toxicity": ("community-ft", "identity-false-positives")}


def _record_scenario(store: Store, scenario, versions, root) -> None:
    for plan in versions:
        folder = root / f"{plan.model}-{plan.version}"
        _add(store, record_version(plan, folder), folder, scenario)
    stage = PLANTED[plan.model][0]
    folder = root / f"{plan.model}-v3"
    _add(store, drop_stage(store.get_version(f"{plan.model}@v2"), root / f"{plan.model}-v2",
                           scenario.task(), stage, folder, "v3"), folder, scenario)


def _add(store: Store, version, folder, scenario) -> None:
    with store.transaction():
        store.add_version(version, source=str(folder))
    effects = attribute(version, folder, scenario.task(), scenario.behaviours(), "naive")
    store.record_run("audit", {"version": version.key}, scores=score_rows(effects))


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    db = root / "demo.duckdb"
    with Store.open(db) as store:
        _record_scenario(store, digits, plans.digits_versions(), root)
        _record_scenario(store, toxicity, plans.toxicity_versions(), root)
    return db


def gate_json(db, key, capsys, *extra):
    code = main(["gate", "--version", key, "--db", str(db), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("model", ["digits", "toxicity"])
def test_planted_stage_fails_the_default_policy(demo_db, capsys, model):
    code, verdict = gate_json(demo_db, f"{model}@v2", capsys)
    assert code == 1 and verdict["verdict"] == "FAIL"
    assert verdict["estimator"] == "naive" and verdict["previous_version"] == "v1"
    blocking = {(r["stage_id"], r["behaviour"]) for r in verdict["results"]
                if r["outcome"] == "fail"}
    assert PLANTED[model] in blocking
    assert {stage for stage, _ in blocking} == {PLANTED[model][0]}


@pytest.mark.parametrize("key", ["digits@v1", "digits@v3", "toxicity@v1", "toxicity@v3"])
def test_clean_and_remediated_versions_pass(demo_db, capsys, key):
    code, verdict = gate_json(demo_db, key, capsys)
    assert (code, verdict["verdict"]) == (0, "PASS")
    assert not [r for r in verdict["results"] if r["outcome"] in ("fail", "indeterminate")]


def test_noise_is_held_back_by_the_materiality_floor(demo_db, capsys):
    # On digits@v1 a late stage holds most of a tiny total harm: the floor keeps it a pass.
    _, verdict = gate_json(demo_db, "digits@v1", capsys)
    shares = [r for r in verdict["results"] if r["rule_id"] == "harm-share-majority"
              and r["behaviour"] == "patch-shortcut-gap" and r["stage_id"] == "polish"]
    assert shares[0]["observed"] > 0.5 and "materiality" in shares[0]["reason"]


def test_eu_and_strict_examples_refuse_the_naive_baseline(demo_db, capsys):
    for name in ("eu-ai-act", "strict"):
        code, verdict = gate_json(demo_db, "digits@v1", capsys, "--policy",
                                  str(policies_dir() / f"{name}.yaml"))
        assert (code, verdict["verdict"]) == (1, "INDETERMINATE")
        reasons = {r["reason"] for r in verdict["results"] if r["severity"] == "block"}
        assert all("'naive'" in reason for reason in reasons)
