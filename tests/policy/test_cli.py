"""auditor gate and auditor policy check: exit codes, table, JSON, JUnit XML."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest
from gatehelpers import add_scored, one_rule, tagged_version

from auditor import api
from auditor.cli import main
from auditor.store import Store

BLOCK = one_rule("direction: harm\nmetric: contribution\ncomparator: '>'\nthreshold: 0.3")
UNDECIDED = one_rule("behaviours: [bias]\nmetric: contribution\ncomparator: '>'\n"
                     "threshold: 0.3", behaviours="behaviours:\n  bias: {direction: harm}\n")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "cli.duckdb"
    with Store.open(path) as store:
        add_scored(store, tagged_version(version="bad"), {"tox": [-0.2, 0.6, 0.2]})
        add_scored(store, tagged_version(version="good", day=2), {"tox": [-0.2, 0.1, 0.2]})
    return path


@pytest.fixture
def policy(tmp_path):
    def write(text: str):
        path = tmp_path / "p.yaml"
        path.write_text(text)
        return str(path)
    return write


def gate(db, key, policy_path, *extra):
    return main(["gate", "--version", key, "--policy", policy_path, "--db", str(db), *extra])


def test_exit_codes_pass_fail_error(db, policy, capsys):
    path = policy(BLOCK)
    assert gate(db, "m@good", path) == 0
    assert "PASS" in capsys.readouterr().out
    assert gate(db, "m@bad", path) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "s1" in out and "r1" in out
    assert gate(db, "m@missing", path) == 2
    assert "not in the store" in capsys.readouterr().err
    assert gate(db, "no-at-sign", path) == 2
    missing_db = db.parent / "none.duckdb"
    assert main(["gate", "--version", "m@good", "--db", str(missing_db)]) == 2
    assert not missing_db.exists() and "no store" in capsys.readouterr().err


def test_indeterminate_fails_unless_allowed(db, policy, capsys):
    path = policy(UNDECIDED)
    assert gate(db, "m@good", path) == 1
    assert "INDETERMINATE" in capsys.readouterr().out
    assert gate(db, "m@good", path, "--allow-indeterminate") == 0


def test_json_verdict(db, policy, capsys):
    assert gate(db, "m@bad", policy(BLOCK), "--json") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] == "FAIL" and verdict["exit_code"] == 1
    assert verdict["policy"]["id"] == "test" and len(verdict["policy"]["hash"]) == 64
    assert [r["stage_id"] for r in verdict["results"] if r["outcome"] == "fail"] == ["s1"]


def test_junit_report(db, policy, tmp_path, capsys):
    out = tmp_path / "gate.xml"
    assert gate(db, "m@bad", policy(BLOCK), "--junit", str(out)) == 1
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert "s1" in failure.get("message") and "0.6" in failure.get("message")
    assert gate(db, "m@good", policy(UNDECIDED), "--junit", str(out),
                "--allow-indeterminate") == 0
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.find("testcase/skipped") is not None


def test_estimator_option_selects_scores(db, policy, capsys):
    assert gate(db, "m@bad", policy(BLOCK), "--estimator", "aa", "--json") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verdict"] == "INDETERMINATE"
    reason = verdict["results"][0]["reason"]
    assert "no scores from estimator 'aa'" in reason and "naive/cfg-a" in reason


def test_default_policy_is_used_without_policy_option(db, capsys):
    assert main(["gate", "--version", "m@bad", "--db", str(db), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["policy"]["id"] == "default"


def test_api_gate_returns_data_and_records_it(db, policy):
    result = api.gate("m@bad", db=db, policy=policy(BLOCK))
    assert result.verdict == "FAIL" and result.exit_code == 1 and not result.passed
    with Store.open(db, read_only=True) as store:
        assert store.verdicts("m", "bad").column("verdict").to_pylist() == ["FAIL"]


def test_policy_check_of_shipped_policies(capsys):
    from auditor.paths import policies_dir

    for path in sorted(policies_dir().glob("*.yaml")):
        assert main(["policy", "check", str(path)]) == 0
    assert "valid policy strict" in capsys.readouterr().out


def test_every_gate_option_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text()
    for option in ("--version", "--policy", "--json", "--junit", "--allow-indeterminate",
                   "--estimator", "--db", "--wait", "auditor policy check"):
        assert option in doc, option
