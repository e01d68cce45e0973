"""Evidence kinds: read from the ``evidence``/``lo``/``hi`` columns of stage_scores when the
store has them (certified verdicts), derived from the estimator when it does not."""

from __future__ import annotations

import pyarrow as pa
import pytest
from tests.support.factories import make_version

from auditor.serve import evidence, overview, version
from auditor.store import Store
from auditor.store.schema import MIGRATIONS, Migration

_COLUMNS = Migration("9000_test_evidence_columns", "ALTER TABLE stage_scores ADD COLUMN "
                     "evidence VARCHAR; ALTER TABLE stage_scores ADD COLUMN lo DOUBLE; "
                     "ALTER TABLE stage_scores ADD COLUMN hi DOUBLE; ALTER TABLE stage_scores "
                     "ADD COLUMN calibration_id VARCHAR;")


def test_row_evidence_and_summary():
    assert evidence.row_evidence({"estimator": "replay"})["mark"] == "exact"
    assert evidence.row_evidence({"estimator": "aa"})["kind"] == "uncalibrated"
    band = evidence.row_evidence({"estimator": "aa", "evidence": "estimate", "lo": 0.1,
                                  "hi": 0.3})
    assert band["kind"] == "estimate" and band["band"] == pytest.approx(0.1)
    assert band["mark"] == "± 0.1"
    assert evidence.summary({"exact": 4}, None)["label"] == "exact"
    assert evidence.summary({"exact": 1, "estimate": 3}, 0.05)["label"] == "± 0.05 (1 exact)"
    assert evidence.summary({"uncalibrated": 1, "exact": 2}, None)["kind"] == "uncalibrated"
    assert evidence.summary({}, None)["label"] == "not scored"


@pytest.fixture
def certified_store(tmp_path):
    """A store whose stage_scores carry evidence columns: the real ones once certified verdicts
    are merged, else the same columns added by a test migration."""
    path = tmp_path / "certified.duckdb"
    with Store.open(path) as store:
        has = {"evidence", "lo", "hi"} <= evidence.score_columns(store)
    with Store.open(path, migrations=MIGRATIONS if has else (*MIGRATIONS, _COLUMNS)) as store:
        yield store


def _rows(store, v, kinds):
    names = [row["column_name"] for row in store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'stage_scores' "
        "ORDER BY ordinal_position") if row["column_name"] != "run_id"]
    rows = []
    for k, (kind, lo, hi) in enumerate(kinds):
        stage = v.stages[k]
        row = dict.fromkeys(names)
        row.update(model=v.model, version=v.version, stage_index=k, stage_id=stage.id,
                   stage_kind=stage.kind, behaviour="toxicity", direction="harm",
                   estimator="aa", estimator_version="1", convention="reset",
                   config_hash="cfg", effect=0.2, share=None, metric_value=0.5,
                   evidence=kind, lo=lo, hi=hi)
        rows.append(row)
    return pa.Table.from_pylist(rows)


def test_stored_evidence_columns_are_shown(certified_store):
    store = certified_store
    v = make_version("m", "v1", stages=3)
    with store.transaction():
        store.add_version(v)
        store.record_run("audit", {"v": 1}, scores=_rows(store, v, [
            ("exact", 0.2, 0.2), ("estimate", 0.15, 0.25), ("estimate", 0.1, 0.3)]))
    [row] = overview.overview(store)["versions"]
    assert row["evidence"]["kind"] == "estimate"
    assert row["evidence"]["band"] == pytest.approx(0.1)
    assert row["evidence"]["label"] == "± 0.1 (1 exact)"
    data, _ = version.version_page(store, "m", "v1")
    marks = [s["evidence"]["mark"] for s in data["effects"][0]["stages"]]
    assert marks == ["exact", "± 0.05", "± 0.1"]
