"""The embedded files, extracted with Poppler's pdfdetach, hash to what the cover prints, and
hold the store's rows."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess

import pytest

from auditor import api

EXPECTED = {"evidence.json", "lineage.prov.json", "policy.yaml", "scores.csv", "environment.json"}


@pytest.fixture(scope="module")
def extracted(quarterly, tmp_path_factory):
    folder = tmp_path_factory.mktemp("detached")
    subprocess.run(["pdfdetach", "-saveall", "-o", str(folder), str(quarterly.pdf)], check=True)
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _cover_hashes(text: str) -> dict[str, str]:
    """The hash table of "Document control" (page 2, after the executive summary): the only
    place the report prints each embedded file's SHA-256."""
    return dict(re.findall(r"^\s*(\S+\.(?:json|yaml|csv))\s+([0-9a-f]{64})\s", text, re.M))


def test_cover_lists_the_sha256_of_each_embedded_file(quarterly, extracted):
    assert set(extracted) == EXPECTED
    cover = _cover_hashes(quarterly.text)
    assert cover == {name: hashlib.sha256(data).hexdigest() for name, data in extracted.items()}


def test_evidence_and_scores_hold_the_store_rows(extracted, store_db):
    db, keys = store_db
    evidence = json.loads(extracted["evidence.json"])
    scores = list(csv.DictReader(extracted["scores.csv"].decode().splitlines()))
    with api.open_store(db, read_only=True) as store:
        stored = store.scores().to_pylist()
        verdicts = {r["version"]: r["verdict"] for r in store.verdicts().to_pylist()}
    assert [v["key"] for v in evidence["versions"]] == keys
    assert {v["key"].split("@")[1]: v["verdict"] for v in evidence["versions"]} == verdicts
    assert sorted(float(r["effect"]) for r in scores) == sorted(r["effect"] for r in stored)
    thresholds = evidence["versions"][0]["thresholds"]
    assert {t["rule_id"]: t["threshold"] for t in thresholds} == {
        "stage-toxicity-share": 0.6, "accuracy-floor": 0.8}


def test_lineage_is_prov_json_and_policy_is_the_stored_file(extracted, store_db):
    from report_data import POLICY_TEXT

    prov = json.loads(extracted["lineage.prov.json"])
    assert set(prov) == set(store_db[1])
    first = prov[store_db[1][0]]
    assert {"entity", "activity", "used", "wasGeneratedBy"} <= set(first)
    assert extracted["policy.yaml"].decode() == POLICY_TEXT
    env = json.loads(extracted["environment.json"])
    assert env["packages"]["weasyprint"] != "not installed"
