"""`auditor attribute` and `auditor audit`: thin commands that print a summary table."""

from __future__ import annotations

import yaml
from exec_helpers import score_rows
from tinyaudit import spec_dict

from auditor.cli import main


def test_attribute_one_version(tiny_store, capsys):
    db, keys = tiny_store
    code = main(["attribute", "--version", keys[0], "--behaviours", "tinyaudit:behaviours",
                 "--estimator", "naive", "--db", str(db)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "top-blamed stage per behaviour" in out and "probe-loss" in out
    assert "1 planned, 0 already stored, 1 done, 0 failed" in out
    assert {r["version"] for r in score_rows(db)} == {keys[0].split("@")[1]}


def test_attribute_without_behaviours_is_a_one_line_error(tiny_store, capsys):
    db, keys = tiny_store
    code = main(["attribute", "--version", keys[0], "--estimator", "naive", "--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no behaviours given" in err[0]


def test_audit_spec_then_resume(tiny_store, tmp_path, capsys):
    db, keys = tiny_store
    spec = tmp_path / "audit.yaml"
    spec.write_text(yaml.safe_dump(spec_dict()))
    assert main(["audit", str(spec), "--db", str(db), "--quiet"]) == 0
    assert f"{len(keys)} planned, 0 already stored, {len(keys)} done" in capsys.readouterr().out
    assert main(["audit", str(spec), "--db", str(db), "--period", "2026-Q4"]) == 0
    assert f"{len(keys)} already stored, 0 done" in capsys.readouterr().out


def test_audit_with_failed_items_exits_2(tiny_store, tmp_path, capsys):
    db, keys = tiny_store
    spec = tmp_path / "audit.yaml"
    spec.write_text(yaml.safe_dump({**spec_dict(), "behaviours": "tinyaudit:broken_behaviours"}))
    code = main(["audit", str(spec), "--db", str(db), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and f"{len(keys)} failed" in captured.out
    assert "re-run the same command" in captured.err


def test_audit_naming_a_missing_entry_point_fails_before_any_work(tiny_store, tmp_path, capsys):
    db, _ = tiny_store
    spec = tmp_path / "audit.yaml"
    spec.write_text(yaml.safe_dump({**spec_dict(), "behaviours": "tinyaudit:missing"}))
    code = main(["audit", str(spec), "--db", str(db), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and "has no attribute 'missing'" in captured.err and not captured.out


def test_audit_period_without_versions_is_an_error(tiny_store, tmp_path, capsys):
    db, _ = tiny_store
    spec = tmp_path / "audit.yaml"
    spec.write_text(yaml.safe_dump(spec_dict()))
    assert main(["audit", str(spec), "--db", str(db), "--period", "2025-Q1"]) == 2
    assert "no stored versions match" in capsys.readouterr().err


def test_help_lists_the_options(capsys):
    assert main(["audit", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--period", "--executor", "--address", "--num-gpus", "--max-retries", "--db",
                   "--wait"):
        assert option in text


def test_audit_without_spec_takes_period_and_behaviours(tiny_store, capsys):
    db, keys = tiny_store
    code = main(["audit", "--period", "2026-Q4", "--behaviours", "tinyaudit:behaviours",
                 "--estimator", "naive", "--db", str(db), "--quiet"])
    assert code == 0 and f"{len(keys)} done, 0 failed" in capsys.readouterr().out
    assert main(["audit", "--period", "2026-Q4", "--db", str(db)]) == 2
    assert "--period and --behaviours" in capsys.readouterr().err


def test_attribute_passes_estimator_settings(tiny_store, capsys):
    from auditor.estimators import get_estimator

    db, keys = tiny_store
    code = main(["attribute", "--version", keys[0], "--behaviours", "tinyaudit:behaviours",
                 "--estimator", "aa", "--setting", "plugin=true", "--db", str(db)])
    assert code == 0, capsys.readouterr()
    hashes = {r["config_hash"] for r in score_rows(db) if r["estimator"] == "aa"}
    assert hashes == {get_estimator("aa", plugin=True).config_hash}
    assert hashes != {get_estimator("aa").config_hash}


def test_bad_estimator_settings_are_one_line_errors(tiny_store, tmp_path, capsys):
    db, keys = tiny_store
    base = ["attribute", "--version", keys[0], "--behaviours", "tinyaudit:behaviours",
            "--db", str(db)]
    cases = {("--setting", "colour=blue"): "estimator 'aa' has no setting 'colour'",
             ("--setting", "plugin"): "--setting 'plugin': expected KEY=VALUE",
             ("--estimator", "aa-ggn", "--setting", "curvature=exact"):
                 "curvature must be one of gauss-newton, fisher"}
    for extra, message in cases.items():
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    spec = tmp_path / "audit.yaml"  # the same checks for a spec's estimator_settings
    spec.write_text(yaml.safe_dump({**spec_dict(), "estimator_settings": {"naive": {"k": 1}}}))
    assert main(["audit", str(spec), "--db", str(db), "--quiet"]) == 2
    assert "estimator 'naive' has no setting 'k'" in capsys.readouterr().err
    spec.write_text(yaml.safe_dump({**spec_dict(), "estimator_settings": {"aa": {}}}))
    assert main(["audit", str(spec), "--db", str(db), "--quiet"]) == 2
    assert "estimator_settings: aa is not among the estimators (naive)" in \
        capsys.readouterr().err
