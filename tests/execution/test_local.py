"""Planning and the local executor against a real DuckDB store of tiny recorded versions."""

from __future__ import annotations

import pytest
from exec_helpers import attribution_runs, duplicate_keys, score_rows
from tinyaudit import spec_dict

from auditor import api
from auditor.errors import InputError, StoreError
from auditor.execution.planner import plan_audit
from auditor.execution.spec import AuditSpec
from auditor.store import Store

STAGES, BEHAVIOURS = 3, 2


def _spec(**changes) -> AuditSpec:
    return AuditSpec.model_validate({**spec_dict(), **changes})


def test_plan_is_versions_by_estimators_by_behaviour_sets(tiny_store):
    db, keys = tiny_store
    two_sets = {"tiny": ["tinyaudit:behaviours", "tinyaudit:behaviours", "tinyaudit:other"]}
    with Store.open(db) as store:
        plan = plan_audit(_spec(behaviours=two_sets), store)
    assert plan.planned == len(keys) * 2 and not plan.skipped  # the repeated set counts once
    assert len({item.item_hash for item in plan.todo}) == plan.planned
    item = plan.todo[0]
    assert item.version_json == ""  # fetched when the item runs, not held by the plan
    assert item.root_uri.startswith("file://") and item.checkpoints
    assert all(len(sha) == 64 for _, sha in item.checkpoints)


def test_local_audit_writes_rows_and_resumes(tiny_store):
    db, keys = tiny_store
    first = api.run_audit(_spec(), db=db, progress=False)
    assert (first.planned, first.skipped, first.done, first.failed) == (6, 0, 6, 0)
    rows = score_rows(db)
    assert len(rows) == len(keys) * STAGES * BEHAVIOURS and not duplicate_keys(rows)
    again = api.run_audit(_spec(), db=db, progress=False)
    assert (again.skipped, again.done) == (6, 0)
    assert sorted(again.run_ids) == sorted(first.run_ids)
    assert score_rows(db) == rows


def test_top_blamed_is_the_stage_with_the_largest_share(tiny_store):
    db, keys = tiny_store
    summary = api.run_audit(_spec(), db=db, progress=False)
    rows = score_rows(db)
    assert set(summary.top_blamed) == set(keys)
    assert any(stage for blamed in summary.top_blamed.values() for stage in blamed.values())
    for key, blamed in summary.top_blamed.items():
        model, version = key.split("@")
        for behaviour, stage in blamed.items():
            mine = [r for r in rows if r["version"] == version and r["behaviour"] == behaviour
                    and r["share"] is not None]
            expected = max(mine, key=lambda r: r["share"])["stage_id"] if mine else None
            assert stage == expected


def test_a_failing_item_is_recorded_failed_and_retried_on_rerun(tiny_store):
    db, keys = tiny_store
    spec = _spec(behaviours={"tiny": "tinyaudit:broken_behaviours"})
    summary = api.run_audit(spec, db=db, progress=False)
    assert (summary.done, summary.failed) == (0, 6)
    assert "the probe set is unavailable" in next(iter(summary.failures.values()))
    assert len(attribution_runs(db, "failed")) == 6 and not score_rows(db)
    assert api.run_audit(spec, db=db, progress=False).failed == 6  # failed items are not skipped


def test_attribute_version_one_key_and_clear_errors(tiny_store):
    db, keys = tiny_store
    summary = api.attribute_version(keys[0], db=db, estimator="naive",
                                    behaviours="tinyaudit:behaviours", progress=False)
    assert (summary.planned, summary.done) == (1, 1)
    assert set(summary.top_blamed) == {keys[0]}
    with pytest.raises(InputError, match="no behaviours given"):
        api.attribute_version(keys[0], db=db, estimator="naive")
    with pytest.raises(StoreError, match="tiny@nope"):
        api.attribute_version("tiny@nope", db=db, estimator="naive",
                              behaviours="tinyaudit:behaviours", progress=False)


def test_a_logged_curvature_sketch_serves_an_audit_from_the_store(tmp_path, capsys):
    """The sketch travels with the lineage into the store and into the work item (it is one of
    the item's hashed checkpoints); the stored scores are the library's."""
    from tinyaudit import behaviours

    from auditor.estimators import attribute
    from auditor.lineage.sketching.spec import SketchSpec
    from tests.support.recorded import record_sgd

    task, rec = record_sgd(tmp_path / "run", sketch=SketchSpec(dim=4, samples=2))
    db = tmp_path / "audit.duckdb"
    version = api.record_lineage(tmp_path / "run", db=db)
    assert version.stages[1].curvature_sketch is not None
    with Store.open(db, read_only=True) as store:
        roles = store.query("SELECT stage_id, sha256 FROM checkpoints "
                            "WHERE role = 'curvature_sketch' ORDER BY stage_id")
    assert [(r["stage_id"], r["sha256"]) for r in roles] == sorted(
        (s.id, s.curvature_sketch.file.sha256) for s in version.stages[1:])
    from auditor.cli import main

    assert main(["lineage", "show", version.key, "--db", str(db)]) == 0
    assert "curvature sketch for aa-ggn projection: finetune, polish (projection=4, samples=2" \
        in " ".join(capsys.readouterr().out.split())
    settings = {"projection": 4, "samples": 2}
    summary = api.attribute_version(version.key, db=db, estimator="aa-ggn", settings=settings,
                                    behaviours="tinyaudit:behaviours", progress=False)
    assert (summary.done, summary.failed) == (1, 0)
    expected = attribute(version, tmp_path / "run", task, behaviours(), "aa-ggn",
                         **settings).effects
    stored = {(r["stage_index"], r["behaviour"]): r["effect"] for r in score_rows(db)}
    assert len(stored) == expected.size
    for k in range(len(version.stages)):
        for q, behaviour in enumerate(behaviours()):
            assert stored[(k, behaviour.name)] == pytest.approx(expected[k, q], rel=1e-9)
