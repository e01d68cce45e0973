"""Stored scores are keyed by the task's and behaviours' code and probe data: editing a
behaviour's probe data makes them stale (recomputed); ``force`` recomputes anyway."""

import sys
import textwrap

from tinyaudit import record_tiny

from auditor import api
from auditor.execution.planner import plan_audit
from auditor.execution.spec import one_estimator_spec

MODULE = """
import json, pathlib, torch
from tests.support.tinytask import TinyTask
from auditor.behaviours.library import probe_loss

def behaviours():
    rows = json.loads((pathlib.Path(__file__).parent / "probe.json").read_text())
    task = TinyTask()
    return [probe_loss("probe-loss", task.x[rows], task.y[rows])]
"""


def test_editing_probe_data_invalidates_stored_scores(tmp_path, monkeypatch):
    (tmp_path / "editable_probes.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "probe.json").write_text("[0, 1, 2, 3]")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("editable_probes", None)
    db = tmp_path / "a.duckdb"
    version = record_tiny(tmp_path / "v0", 0)
    api.add_version(version, tmp_path / "v0", db=db)
    spec = one_estimator_spec({"ids": [version.key]}, "editable_probes:behaviours", "naive")
    summary = api.run_audit(spec, db=db, progress=False)
    assert summary.done == 1
    with api.open_store(db) as store:
        assert len(plan_audit(spec, store).skipped) == 1  # unchanged: reused
        assert len(plan_audit(spec, store, force=True).todo) == 1  # --force
    (tmp_path / "probe.json").write_text("[4, 5, 6, 7]")
    with api.open_store(db) as store:
        plan = plan_audit(spec, store)
    assert len(plan.todo) == 1 and not plan.skipped
