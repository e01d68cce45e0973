"""Remediation on the digits scenario: removing the vendor stage really lowers the harm,
measured on held-out probes, and the result is a stored, replayable version."""

from __future__ import annotations

from auditor import api
from auditor.cli import main
from auditor.demo import plans
from auditor.demo.digits import BEHAVIOURS
from auditor.demo.record import record_version


def test_remediate_drops_planted_stage_and_harm_falls(tmp_path, capsys):
    db = tmp_path / "a.duckdb"
    plan = plans.digits_versions()[1]
    record_version(plan, tmp_path / "digits-v2")
    api.record_lineage(tmp_path / "digits-v2", db=db)
    code = main(["remediate", "--version", "digits@v2", "--stage", "vendor-ft",
                 "--behaviours", BEHAVIOURS, "--new-version", "v3", "--db", str(db)])
    assert code == 0
    assert "patch-shortcut-gap" in capsys.readouterr().out
    with api.open_store(db, read_only=True) as store:
        v3 = store.get_version("digits@v3")
        run = [r for r in store.query("SELECT config_json FROM runs WHERE kind = 'remediation'")]
    assert [s.id for s in v3.stages] == ["pretrain", "clean-ft", "polish"] and v3.parent == "v2"
    assert len(run) == 1
    result = api.remediate("digits@v2", "vendor-ft", db=db, behaviours=BEHAVIOURS,
                           new_version="v3b")
    assert result.after["patch-shortcut-gap"] < result.before["patch-shortcut-gap"] - 0.05
    assert abs(result.after["clean-error"] - result.before["clean-error"]) < 0.03
