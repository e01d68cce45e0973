"""Fallback bands where replay is impossible: the band of the estimator's measured error on the
shipped benchmark scenarios, stored as a calibration of source ``benchmark``, every row it
decides labelled "not calibrated on this model" (docs/certify.md, "Fallback bands")."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))

from tinyaudit import record_tiny  # noqa: E402

from auditor import api  # noqa: E402
from auditor.certify.conformal import conformal_quantile  # noqa: E402
from auditor.certify.fallback import (  # noqa: E402
    BANDS_FILE,
    NOTE,
    benchmark_calibration,
    load_entries,
    write_entries,
)
from auditor.cli import main  # noqa: E402
from auditor.estimators import get_estimator  # noqa: E402

BEHAVIOURS = "tinyaudit:behaviours"


def _entry(kind, scores, config_hash="h", estimator="aa"):
    return {"estimator": estimator, "config_hash": config_hash, "normalisation": "behaviour",
            "stage_kind": kind, "scenarios": ["s1", "s2"], "held_out_coverage": 0.9,
            "scores": scores}


def test_the_fallback_band_is_the_conformal_quantile_of_the_benchmark_scores(tmp_path):
    path = tmp_path / "bands.json"
    scores = np.random.default_rng(0).exponential(size=40).tolist()
    write_entries([_entry("pretrain", scores), _entry("fine-tune", [0.1] * 3)], "test", path)
    cal = benchmark_calibration("aa", "h", alpha=0.1, path=path)
    assert cal.source == "benchmark" and cal.note == NOTE
    assert cal.band("pretrain") == (conformal_quantile(scores, 0.1), "pretrain")
    assert math.isinf(cal.band("fine-tune")[0])  # three scores: too few for 90%
    assert math.isinf(cal.band("alignment")[0])  # a kind the benchmark never saw
    assert benchmark_calibration("aa", "other settings", alpha=0.1, path=path) is None
    write_entries([_entry("pretrain", [1.0] * 20)], "test", path)  # replaces that entry only
    assert {e["stage_kind"] for e in load_entries(path)} == {"pretrain", "fine-tune"}


def test_the_package_ships_bands_for_the_default_aa_configuration():
    entries = [e for e in load_entries(BANDS_FILE)
               if e["config_hash"] == get_estimator("aa").config_hash]
    assert {"pretrain", "fine-tune", "alignment"} <= {e["stage_kind"] for e in entries}
    assert all(len(e["scenarios"]) >= 2 and len(e["scores"]) >= 9 for e in entries)


@pytest.fixture
def unreplayable(tmp_path):
    """A tiny version imported without its batch logs: no unit can be replayed."""
    db = tmp_path / "a.duckdb"
    version = record_tiny(tmp_path / "v0", 0, steps=6)
    data = json.loads(version.model_dump_json())
    for stage in data["stages"]:
        stage["batch_ids"] = None
    version = type(version).model_validate(data)
    api.add_version(version, tmp_path / "v0", db=db)
    api.attribute_version(version.key, db=db, behaviours=BEHAVIOURS, estimator="aa",
                          progress=False)
    return db, version.key


def test_an_unreplayable_lineage_gets_benchmark_bands_labelled_not_calibrated(
        unreplayable, capsys):
    db, key = unreplayable
    code = main(["gate", "--version", key, "--certify", "--json", "--db", str(db)])
    document = json.loads(capsys.readouterr().out)
    assert code == document["exit_code"]
    rows = [row for row in document["results"] if row["stage_id"]]
    estimated = {r["evidence"] for r in rows if r["evidence"].startswith("estimate ± ")}
    assert estimated and all(e.endswith(f"({NOTE})") for e in estimated)
    # only the last stage's unit ran (it trains nothing: its start checkpoint)
    assert {r["stage_id"] for r in rows if r["evidence"] == "exact"} <= {"align"}
    assert any("bands from aa's measured error on the benchmark" in m
               for m in document["certify"]["messages"])
    with api.open_store(db, read_only=True) as store:
        found = {c["source"]: c for c in store.calibrations()}
        assert found["benchmark"]["n"] >= 9 and found["benchmark"]["units"]  # its scenarios
        assert store.verify_log().ok
    # a plain gate afterwards decides on the same bands and says the same
    plain = api.gate(key, db=db, estimator="aa")
    assert any(NOTE in (r["evidence"] or "") for r in plain.rows())
