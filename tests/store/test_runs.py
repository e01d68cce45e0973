import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from auditor.errors import StoreError
from auditor.store import Store
from auditor.store.schema import MIGRATIONS
from tests.support.factories import make_scores, make_version

SCORE_COLUMNS = ["run_id", "model", "version", "stage_index", "stage_id", "stage_kind",
                 "behaviour", "direction", "estimator", "estimator_version", "convention",
                 "config_hash", "effect", "share", "metric_value"]


def _policy_rows(run_id: str, outcomes: list[str]) -> pa.Table:
    n = len(outcomes)
    return pa.table({
        "run_id": [run_id] * n, "model": ["tiny"] * n, "version": ["v1"] * n,
        "policy_id": ["default"] * n, "policy_version": ["1"] * n, "policy_hash": ["ph"] * n,
        "rule_id": [f"r{i}" for i in range(n)], "severity": ["block"] * n,
        "behaviour": ["behaviour-0"] * n, "stage_id": ["s1"] + [None] * (n - 1),
        "metric": ["share"] * n, "comparator": ["<="] * n, "threshold": [0.5] * n,
        "observed": [0.25] + [None] * (n - 1), "outcome": outcomes, "reason": ["r"] * n,
        "waiver_owner": [None] * n, "waiver_reason": [None] * n,
        "waiver_expiry": ["2027-01-31"] * n, "estimator": ["sgd-tracin"] * n,
        "config_hash": ["cfg"] * n})


def test_scores_round_trip_with_the_contract_columns(db_path, version):
    scores = make_scores(version, behaviours=4)
    with Store.open(db_path) as store:
        store.add_version(version)
        run_id = store.record_run("audit", {"estimator": "sgd-tracin"}, scores=scores)
    with Store.open(db_path, read_only=True) as store:
        stored = store.scores(model="tiny", version="v1")
        assert store.has_scores("tiny@v1", "sgd-tracin", "cfg0123456789abc")
        assert not store.has_scores("tiny@v1", "sgd-tracin", "another-config")
    assert stored.column_names == SCORE_COLUMNS
    assert set(stored.column("run_id").to_pylist()) == {run_id}
    key = ["behaviour", "stage_index"]
    expected = scores.sort_by([(k, "ascending") for k in key])
    got = stored.sort_by([(k, "ascending") for k in key])
    for name in scores.column_names:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


def test_scores_of_unfinished_or_failed_runs_do_not_count(store, version):
    running = store.start_run("audit", {})
    store.insert_scores(running, make_scores(version))
    failed = store.start_run("audit", {})
    store.insert_scores(failed, make_scores(version))
    store.finish_run(failed, "failed")
    assert store.scores().num_rows == 0
    assert not store.has_scores("tiny@v1", "sgd-tracin", "cfg0123456789abc")
    store.finish_run(running)
    assert store.scores().num_rows == make_scores(version).num_rows
    with pytest.raises(StoreError, match="already complete"):
        store.insert_scores(running, make_scores(version))


def test_a_run_that_raises_midway_leaves_no_rows_and_no_events(store, version):
    store.add_version(version)
    events = len(store.events())
    bad = _policy_rows("unused", ["pass"]).drop_columns(["run_id", "outcome"])
    with pytest.raises(StoreError, match="policy_results have the wrong columns .missing outcome"):
        store.record_run("audit", {}, scores=make_scores(version), policy_results=bad)
    assert len(store.events()) == events
    for table in ("runs", "stage_scores", "policy_results"):
        assert store.query(f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
    assert store.verify_log().ok


def test_a_user_transaction_that_raises_rolls_everything_back(store, version):
    with pytest.raises(RuntimeError), store.transaction():
        store.add_version(version)
        store.record_run("audit", {}, scores=make_scores(version))
        raise RuntimeError("crash before commit")
    assert store.query("SELECT count(*) AS n FROM versions") == [{"n": 0}]
    assert store.query("SELECT count(*) AS n FROM stage_scores") == [{"n": 0}]
    assert [e.kind for e in store.events()] == ["schema.migrate"] * len(MIGRATIONS)


def test_score_rows_must_belong_to_the_run_and_have_the_contract_columns(store, version):
    run_id = store.start_run("audit", {})
    scores = make_scores(version)
    foreign = scores.append_column("run_id", pa.array(["other-run"] * scores.num_rows))
    with pytest.raises(StoreError, match="also hold rows of other-run"):
        store.insert_scores(run_id, foreign)
    with pytest.raises(StoreError, match="unknown colour"):
        store.insert_scores(run_id, scores.append_column("colour", pa.array(["x"] *
                                                                          scores.num_rows)))


def test_policy_results_and_verdicts_round_trip(store, version):
    store.add_version(version)
    run_id = store.start_run("policy", {"policy": "default"})
    store.insert_policy_results(run_id, _policy_rows(run_id, ["pass", "indeterminate"]))
    store.insert_verdict(run_id, "tiny", "v1", "default", "ph", "INDETERMINATE")
    store.finish_run(run_id)
    results = store.policy_results(model="tiny")
    assert results.num_rows == 2
    assert pc.sum(pc.is_null(results.column("observed"))).as_py() == 1
    assert str(results.column("waiver_expiry")[0]) == "2027-01-31"
    assert store.verdicts(version="v1").column("verdict").to_pylist() == ["INDETERMINATE"]
    with pytest.raises(StoreError, match="not one of"):
        store.record_run("policy", {}, verdicts=[dict(model="tiny", version="v1",
                                                      policy_id="p", policy_hash="h",
                                                      verdict="MAYBE")])


def test_behaviours_and_reports_are_recorded_once(store):
    assert store.add_behaviour("toxicity", "harm", "toxic completions", "d1")
    assert not store.add_behaviour("toxicity", "harm", "toxic completions", "d1")
    assert store.add_behaviour("toxicity", "harm", "toxic completions", "d2")
    assert [b["probe_digest"] for b in store.behaviours()] == ["d1", "d2"]
    report_id = store.add_report("audit", "out/report.pdf", "ab" * 32, "CN=Auditor")
    assert store.reports()[0]["report_id"] == report_id
    with pytest.raises(StoreError, match="already recorded"):
        store.add_report("audit", "x.pdf", "cd" * 32, report_id=report_id)
    assert store.verify_log().ok


def test_a_second_version_of_a_model_reuses_its_model_row(store):
    store.add_version(make_version("m", "v1"))
    store.add_version(make_version("m", "v2"))
    assert store.query("SELECT model FROM models") == [{"model": "m"}]


def test_rows_that_break_a_column_constraint_are_a_store_error_and_roll_back(store, version):
    scores = make_scores(version)
    nulls = scores.set_column(scores.column_names.index("behaviour"), "behaviour",
                              pa.nulls(scores.num_rows, pa.string()))
    with pytest.raises(StoreError, match="cannot insert rows into stage_scores: .*NOT NULL"):
        store.record_run("audit", {}, scores=nulls)
    words = scores.set_column(scores.column_names.index("effect"), "effect",
                              pa.array(["big"] * scores.num_rows))
    with pytest.raises(StoreError, match="cannot insert rows into stage_scores"):
        store.record_run("audit", {}, scores=words)
    assert store.query("SELECT count(*) AS n FROM runs") == [{"n": 0}]
    assert store.verify_log().ok


_CRASHER = """
import os, sys
sys.path.insert(0, sys.argv[2])
from tests.support.factories import make_scores, make_version
from auditor.store import Store
store = Store.open(sys.argv[1])
version = make_version()
store.add_version(version)
with store.transaction():
    run_id = store.start_run("audit", {})
    store.insert_scores(run_id, make_scores(version, behaviours=50))
    os._exit(3)  # the process dies before the run's transaction commits
"""


def test_a_process_killed_mid_run_leaves_no_partial_run(db_path):
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    crashed = subprocess.run([sys.executable, "-c", _CRASHER, str(db_path), str(root)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == 3, crashed.stderr
    with Store.open(db_path) as store:
        assert [v.key for v in store.list_versions()] == ["tiny@v1"]  # committed before the run
        assert store.query("SELECT count(*) AS n FROM runs") == [{"n": 0}]
        assert store.query("SELECT count(*) AS n FROM stage_scores") == [{"n": 0}]
        assert [e.kind for e in store.events()][-1] == "version.add"
        assert store.verify_log().ok
