"""``auditor audit`` with the spec's replay section: every version gets a certified gate; the
replay section is parsed strictly; replaying everything when it is cheaper than the estimator."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))

from tinyaudit import record_tiny  # noqa: E402

from auditor import api  # noqa: E402
from auditor.certify.costs import replay_all_is_cheaper  # noqa: E402
from auditor.cli import main  # noqa: E402
from auditor.errors import InputError  # noqa: E402
from auditor.execution.spec import load_spec  # noqa: E402


def test_audit_with_a_replay_section_certifies_every_version(tmp_path, capsys):
    db = tmp_path / "a.duckdb"
    keys = []
    for index in range(2):
        version = record_tiny(tmp_path / f"v{index}", index)
        api.add_version(version, tmp_path / f"v{index}", db=db)
        keys.append(version.key)
    spec = tmp_path / "audit.yaml"
    spec.write_text(yaml.safe_dump({
        "versions": {"ids": keys}, "behaviours": "tinyaudit:behaviours", "estimators": ["aa"],
        "replay": {"mode": "decisive", "budget": "100%",
                   "calibration": {"sample": 0.5, "min": 1, "coverage": 0.9}}}))
    assert main(["audit", str(spec), "--db", str(db), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "certified verdicts" in out and keys[0] in out and keys[1] in out
    with api.open_store(db, read_only=True) as store:
        calibrations = store.calibrations()
        assert len(calibrations) == 2
        assert store.verify_log().ok
    # one calibration pool over the audit's versions: the same seeded sample for both
    first, second = ({tuple(u) for u in c["units"]} for c in calibrations)
    assert first == second and {u[0] for u in first} == set(keys)
    assert main(["audit", str(spec), "--db", str(db), "--quiet"]) == 0
    assert "reused 2 stored item(s)" in capsys.readouterr().out


def test_the_replay_section_is_strict(tmp_path):
    spec = tmp_path / "audit.yaml"
    spec.write_text("versions: {ids: [a@b]}\nbehaviours: m:f\nreplay:\n  budgt: 5\n")
    with pytest.raises(InputError, match=r"audit.yaml:4: replay.budgt"):
        load_spec(spec)
    spec.write_text("versions: {ids: [a@b]}\nbehaviours: m:f\nreplay:\n  budget: lots\n")
    with pytest.raises(InputError, match="budget"):
        load_spec(spec)


def test_replaying_everything_is_chosen_when_cheaper_than_the_estimator():
    steps = [150, 80, 40, 20]
    assert replay_all_is_cheaper("aa", {}, steps) is None
    message = replay_all_is_cheaper("aa-ggn", {}, steps)
    assert message and "220 steps" in message and "aa-ggn" in message
    assert replay_all_is_cheaper("aa-ggn", {}, [10] * 12) is None  # 660 > 360
