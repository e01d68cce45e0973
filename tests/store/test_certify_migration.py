"""Migration 0005 (certified evidence): existing score rows get their estimator's evidence, the
event log still verifies, a subject tampered with before the migration stays flagged, and
calibrations round-trip."""

import duckdb
import pyarrow as pa

from auditor.store import Store
from auditor.store.schema import MIGRATIONS
from tests.support.factories import make_scores


def _old_store(db_path, version):
    with Store.open(db_path, migrations=MIGRATIONS[:4]) as store:
        store.add_version(version)
        replay = store.record_run("attribution", {"e": "replay"},
                                  scores=make_scores(version, estimator="replay"))
        aa = store.record_run("attribution", {"e": "aa"}, scores=make_scores(version, seed=1))
    return replay, aa


def test_old_scores_get_evidence_and_the_log_still_verifies(db_path, version):
    replay, aa = _old_store(db_path, version)
    with Store.open(db_path) as store:
        assert store.verify_log().ok, store.verify_log().problems
        rows = store.query("SELECT run_id, evidence, lo, hi, effect FROM stage_scores")
    by_run = {r["run_id"]: r for r in rows}
    assert by_run[replay]["evidence"] == "exact"
    assert by_run[replay]["lo"] == by_run[replay]["hi"] == by_run[replay]["effect"]
    assert by_run[aa]["evidence"] == "uncalibrated" and by_run[aa]["lo"] is None


def test_rows_tampered_before_the_migration_stay_flagged(db_path, version):
    _, aa = _old_store(db_path, version)
    conn = duckdb.connect(str(db_path))
    conn.execute("UPDATE stage_scores SET effect = effect + 1 WHERE run_id = ?", [aa])
    conn.close()
    with Store.open(db_path) as store:
        problems = store.verify_log().problems
    assert len(problems) == 1 and aa in problems[0] and "altered" in problems[0]


def test_new_scores_without_the_new_columns_get_defaults(store, version):
    run = store.record_run("attribution", {}, scores=make_scores(version, estimator="replay"))
    rows = store.query("SELECT evidence, lo, effect FROM stage_scores WHERE run_id = ?", [run])
    assert {r["evidence"] for r in rows} == {"exact"}
    assert all(r["lo"] == r["effect"] for r in rows)
    assert store.verify_log().ok


def test_calibrations_round_trip_and_are_logged(store):
    cid = store.insert_calibration({
        "estimator": "aa", "config_hash": "c0ffee", "model": "tiny", "alpha": 0.1,
        "coverage_target": 0.9, "n": 12, "n_units": 3, "normalisation": "behaviour",
        "pooling": "pair", "strata": "kind", "q": 0.5, "q_json": {"*": 0.5},
        "units_json": [["tiny@v1", "sft", "fine-tune"]], "residuals_json": [0.1, -0.2],
        "measured_coverage": 0.9, "coverage_json": {"*": 0.9}, "median_relative_error": 0.3,
        "source": "replay"})
    [row] = store.calibrations([cid])
    assert row["q"] == 0.5 and row["units"] == [["tiny@v1", "sft", "fine-tune"]]
    assert row["residuals"] == [0.1, -0.2]
    assert store.verify_log().ok
    store.conn.execute("UPDATE calibrations SET q = 0.01")
    assert not store.verify_log().ok


def test_policy_results_keep_their_columns(store, version):
    rows = pa.Table.from_pylist([{
        "model": "tiny", "version": "v1", "policy_id": "p", "policy_version": "1",
        "policy_hash": "h", "rule_id": "r", "severity": "block", "behaviour": "b",
        "stage_id": "s", "metric": "share", "comparator": ">", "threshold": 0.5,
        "observed": 0.4, "outcome": "pass", "reason": "", "waiver_owner": None,
        "waiver_reason": None, "waiver_expiry": None, "estimator": "aa", "config_hash": "c"}])
    run = store.record_run("policy", {}, policy_results=rows)
    [row] = store.query("SELECT evidence, observed_lo FROM policy_results WHERE run_id = ?", [run])
    assert row == {"evidence": None, "observed_lo": None}
