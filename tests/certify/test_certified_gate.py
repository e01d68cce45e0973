"""A certified gate end to end on a tiny recorded version: real store, real replays on the local
executor, calibration stored, every row's evidence recorded, and the certified outcomes equal to
those of a full replay; plus the CLI's ``--certify --json``."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))

from tinyaudit import record_tiny  # noqa: E402

from auditor import api  # noqa: E402
from auditor.cli import main  # noqa: E402

BEHAVIOURS = "tinyaudit:behaviours"


@pytest.fixture
def scored(tmp_path):
    db = tmp_path / "a.duckdb"
    version = record_tiny(tmp_path / "v0", 0, steps=6)
    api.add_version(version, tmp_path / "v0", db=db)
    api.attribute_version(version.key, db=db, behaviours=BEHAVIOURS, estimator="aa",
                          progress=False)
    return db, version.key


def _outcomes(result):
    return {(r["rule_id"], r["behaviour"], r["stage_id"]): r["outcome"] for r in result.rows()}


def test_certified_outcomes_equal_full_replay_and_every_row_has_evidence(scored):
    db, key = scored
    result, summary = api.certified_gate(key, db=db, progress=False)
    assert summary.calibration_id and summary.calibration.n_units >= 1
    evidence = {r["evidence"] for r in result.rows() if r["stage_id"]}
    assert evidence and all(e == "exact" or e.startswith("estimate ± ") for e in evidence)
    api.attribute_version(key, db=db, behaviours=BEHAVIOURS, estimator="replay", progress=False)
    truth = api.gate(key, db=db, estimator="replay")
    assert _outcomes(result) == _outcomes(truth)
    with api.open_store(db, read_only=True) as store:
        assert store.verify_log().ok
        [calibration] = store.calibrations()
        assert calibration["units"] and calibration["coverage_target"] == pytest.approx(0.9)
        kinds = {r["evidence"] for r in store.query(
            "SELECT evidence FROM stage_scores s JOIN runs r USING (run_id) "
            "WHERE r.kind = 'certification'")}
        assert kinds <= {"exact", "estimate"}
        # each certified row carries the behaviour's value at the final parameters, as the
        # estimator's row does (reports print it as "metric at θT")
        pairs = store.query(
            "SELECT DISTINCT s.behaviour, s.metric_value, r.kind FROM stage_scores s "
            "JOIN runs r USING (run_id) WHERE s.estimator = 'aa'")
        certified = {p["behaviour"]: p["metric_value"] for p in pairs
                     if p["kind"] == "certification"}
        estimated = {p["behaviour"]: p["metric_value"] for p in pairs
                     if p["kind"] == "attribution"}
        assert certified and certified == estimated
        assert all(v is not None for v in certified.values())
        # and each stage's share of its behaviour's harm, from the certified numbers
        rows = store.query(
            "SELECT s.behaviour, s.direction, s.effect, s.share FROM stage_scores s "
            "JOIN runs r USING (run_id) WHERE r.kind = 'certification'")
        for behaviour in {r["behaviour"] for r in rows}:
            mine = [r for r in rows if r["behaviour"] == behaviour]
            sign = 1.0 if mine[0]["direction"] == "harm" else -1.0
            harm = [max(sign * r["effect"], 0.0) for r in mine]
            for r, h in zip(mine, harm):
                if sum(harm) > 0:
                    assert r["share"] == pytest.approx(h / sum(harm))
                else:
                    assert r["share"] is None


def test_a_second_certified_gate_reuses_the_stored_replays(scored, capsys):
    db, key = scored
    lines = []
    api.certified_gate(key, db=db, progress=False, say=lines.append)
    again = []
    _, summary = api.certified_gate(key, db=db, progress=False, say=again.append)
    assert summary.reused  # the first gate's replays, cited
    assert all(" 0 unit(s)" in line for line in again if line.startswith("replay plan"))


def test_gate_certify_json_carries_evidence_per_row(scored, capsys):
    db, key = scored
    code = main(["gate", "--version", key, "--certify", "--json", "--db", str(db)])
    document = json.loads(capsys.readouterr().out)
    assert code == document["exit_code"]
    assert all("evidence" in row for row in document["results"])
    assert document["certify"]["calibration_id"]
    assert set(document["certify"]["decided_by"]) == {"estimate", "exact", "indeterminate",
                                                      "uncalibrated"}


def test_a_bad_budget_is_a_one_line_error(scored, capsys):
    db, key = scored
    code = main(["gate", "--version", key, "--certify", "--budget", "lots", "--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--budget" in err[0]


def test_estimators_that_disagree_beyond_their_bands_are_reported(scored):
    db, key = scored
    api.attribute_version(key, db=db, behaviours=BEHAVIOURS, estimator="naive", progress=False)
    api.certified_gate(key, db=db, estimator="naive", progress=False)
    with api.open_store(db) as store:
        # make the naive certification's bands disjoint from everything aa will certify
        store.conn.execute("UPDATE stage_scores SET lo = 1e6, hi = 1e6 + 1 WHERE estimator = "
                           "'naive' AND run_id IN (SELECT run_id FROM runs WHERE kind = "
                           "'certification')")
    _, summary = api.certified_gate(key, db=db, estimator="aa", progress=False)
    assert any("disagree beyond their bands" in m and "naive/" in m for m in summary.messages)


def test_replay_units_run_as_ray_tasks(scored, ray_session):
    from auditor.execution.ray_executor import RayExecutor

    db, key = scored
    local, _ = api.certified_gate(key, db=db, progress=False, force=True)
    ray_result, summary = api.certified_gate(key, db=db, executor=RayExecutor(), progress=False,
                                             force=True)
    assert summary.sampled and _outcomes(ray_result) == _outcomes(local)
    with api.open_store(db, read_only=True) as store:
        runs = store.query("SELECT count(*) AS n FROM runs WHERE kind = 'replay-unit' "
                           "AND status = 'complete'")
    assert runs[0]["n"] >= 2 * len(summary.sampled)  # --force replayed them again
