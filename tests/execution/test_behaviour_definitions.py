"""The audit pipeline stores what every behaviour it measures is (name, direction, metric,
description, probe size and probe digest), once per definition, and the report prints them."""

from __future__ import annotations

import subprocess

from tinyaudit import behaviours, spec_dict

from auditor import api
from auditor.execution.spec import AuditSpec
from auditor.store import Store


def _definitions(db) -> list[dict]:
    with Store.open(db, read_only=True) as store:
        assert store.verify_log().ok
        return [{k: v for k, v in row.items() if k != "added_at"} for row in store.behaviours()]


def test_an_audit_stores_each_behaviour_definition_once_and_the_report_shows_them(
        tiny_store, tmp_path):
    db, keys = tiny_store
    spec = AuditSpec.model_validate({**spec_dict(), "versions": {"ids": keys[:2]}})
    api.run_audit(spec, db=db, progress=False)
    expected = {b.name: b for b in behaviours()}
    stored = _definitions(db)
    assert [row["name"] for row in stored] == sorted(expected)
    for row in stored:
        behaviour = expected[row["name"]]
        assert row == {"name": behaviour.name, "direction": behaviour.direction,
                       "description": behaviour.description,
                       "probe_digest": behaviour.probe_digest, "metric": behaviour.metric_name,
                       "probe_size": 16}
        assert len(row["probe_digest"]) == 64 and row["metric"] and row["description"]

    api.run_audit(spec, db=db, progress=False)  # all items stored: nothing added twice
    assert _definitions(db) == stored

    result = api.make_report(db=db, out_dir=tmp_path / "out", version=keys[0], html=False)
    text = subprocess.run(["pdftotext", "-layout", str(result.pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    section = text[text.index("What it measures"):]
    for row in stored:
        line = next(line for line in section.splitlines() if line.strip().startswith(row["name"]))
        assert row["direction"] in line and "16" in line, line
        assert row["probe_digest"][:8] in section
    assert "error rate" in section and "no behaviour definitions" not in text.lower()
