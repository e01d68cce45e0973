"""Both report types, rendered from a real store, read back with pdftotext: every required
section is there, and the numbers are the store's."""

from __future__ import annotations

import re

from auditor import api
from auditor.report.evidence import evidence_runs, version_evidence

GATE_SECTIONS = ("Decision", "Stages to blame", "Remediation and its measured effect",
                 "Residual risk", "Accountability", "Next steps",
                 "1. Document control", "2. Findings", "3. Accountability and scope",
                 "4. System description", "5. Development lineage", "6. Behaviours",
                 "7. Results", "8. Policy evaluation", "9. Risk and remediation",
                 "10. Change log", "11. Attribution method", "12. Limitations",
                 "13. Logging, traceability and retention", "14. How to reproduce",
                 "15. EU AI Act Annex IV cross-reference", "16. Sign-off",
                 "Appendix A. Evaluated rows", "Appendix B. Runs cited",
                 "Appendix C. Environment", "Appendix D. Embedded files",
                 "Embedded files (SHA-256)", "Revision history", "Contents", "Per-rule outcome",
                 "Approvals and waivers", "Hyperparameters", "Datasets", "Fidelity check",
                 "Contribution table", "Waivers", "Retention", "Rationale (policy)")
QUARTERLY_SECTIONS = ("Decision", "Stages to blame", "1. Document control", "2. Findings",
                      "Summary of all versions", "3. Accountability and scope",
                      "4. Trends across the period", "Behaviour / version", "5. Behaviours",
                      "6. Failing versions", "7. Attribution method", "8. Limitations",
                      "9. Logging, traceability and retention", "10. How to reproduce",
                      "11. EU AI Act Annex IV cross-reference", "12. Sign-off",
                      "Appendix A. Evaluated rows",
                      "Appendix B. Stage contributions of every version")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _stored(db, key):
    model, version = key.split("@")
    with api.open_store(db, read_only=True) as store:
        head = store.events()
        rows = version_evidence(store, model, version, evidence_runs(store, model, version))
        lineage = store.get_version(key)
    return rows, lineage, head


def test_gate_report_has_every_section(gate, store_db):
    text = _flat(gate.text)
    missing = [s for s in GATE_SECTIONS if s not in text]
    assert not missing, missing
    assert "Release gate report: " + store_db[1][-1] in text


def test_gate_report_prints_the_stored_numbers(gate, store_db):
    db, keys = store_db
    rows, lineage, _ = _stored(db, keys[-1])
    text = _flat(gate.text)
    for score in rows["stage_scores"]:
        assert f"{score['effect']:.6g}" in text, score
    for result in rows["policy_results"]:
        assert f"{result['observed']:.6g}" in text and f"{result['threshold']:.6g}" in text
    verdict = rows["verdicts"][0]["verdict"]
    assert f"Overall verdict: {verdict}" in text
    for stage in lineage.stages:
        assert stage.theta_end.sha256[:40] in gate.text.replace("\n", "")
        assert f"{stage.datasets[0].records}" in text
    fidelity = rows["fidelity_checks"][0]
    assert f"{fidelity['pearson']:.4g}" in text and f"{fidelity['max_abs_error']:.4g}" in text


def test_gate_report_cites_log_head_and_runs(gate, store_db):
    import json
    import subprocess

    pdf_dir = gate.pdf.parent / "gate-files"
    pdf_dir.mkdir(exist_ok=True)
    subprocess.run(["pdfdetach", "-saveall", "-o", str(pdf_dir), str(gate.pdf)], check=True)
    evidence = json.loads((pdf_dir / "evidence.json").read_text())
    text = _flat(gate.text)
    assert evidence["event_log"]["hash"] in text.replace(" ", "")
    for run_ids in evidence["versions"][0]["runs"].values():
        for run_id in run_ids:
            assert run_id[:16] in text.replace(" ", "")


def test_quarterly_report_has_every_section_and_version(quarterly, store_db):
    db, keys = store_db
    text = _flat(quarterly.text)
    missing = [s for s in QUARTERLY_SECTIONS if s not in text]
    assert not missing, missing
    with api.open_store(db, read_only=True) as store:
        verdicts = {f"{r['model']}@{r['version']}": r["verdict"]
                    for r in store.verdicts().to_pylist()}
    assert set(verdicts) == set(keys)
    for key, verdict in verdicts.items():
        assert re.search(rf"{re.escape(key)} \S+ \d+ {verdict}", text), key
        assert f"{key}: {verdict}" in text  # a failing section or an appendix B heading
    failing = [k for k, v in verdicts.items() if v == "FAIL"]
    section = text[text.index("6. Failing versions", text.index("Appendix B")):]
    assert failing and all(f"{key}: FAIL Results" in section for key in failing)
    assert text.count("Risk and remediation") == len(failing)


def test_quarterly_trend_table_matches_the_store(quarterly, store_db):
    db, keys = store_db
    text = _flat(quarterly.text)
    for key in keys:
        rows, _, _ = _stored(db, key)
        total = sum(r["effect"] for r in rows["stage_scores"] if r["behaviour"] == "toxicity")
        metric = rows["stage_scores"][0]["metric_value"]
        assert f"{total:.4g}" in text and f"{metric:.4g}" in text


def test_demo_identity_says_demo_on_the_cover(gate, quarterly):
    cover = gate.text.split("\f")[0]
    assert "DEMO" in cover and "auditor demo identity" in _flat(cover)
    assert "DEMO" not in quarterly.text and "Ana Lee" in _flat(quarterly.text.split("\f")[0])


def test_html_twin_is_the_same_report(gate):
    html = gate.html.read_text()
    assert "<svg" in html and "<style>" in html and "report.css" not in html
    report_id = re.search(r"Report id\s+(\w+)", gate.text)[1]
    assert report_id in html and "Development lineage" in html


def test_pages_are_numbered_with_headers(quarterly):
    pages = quarterly.text.split("\f")[:-1]
    assert len(pages) > 5
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page
    assert all("Quarterly accountability report: 2026-Q4" in page for page in pages[1:])


def test_unaudited_version_renders_as_not_evaluated(store_db, tmp_path):
    import shutil

    from auditor.report.make import render_report
    from tests.support.factories import make_version

    db = tmp_path / "copy.duckdb"
    shutil.copy(store_db[0], db)
    with api.open_store(db) as store:
        store.add_version(make_version("other", "v0", created_at=None), source=None)
        context, html, pdf = render_report(store, version="other@v0")
    assert context.verdict == "NOT EVALUATED" and pdf.startswith(b"%PDF-")
    assert "No stage scores are stored for other@v0" in html
    assert "No policy was evaluated for other@v0" in html
    assert "first audited version" in html


def test_waivers_are_printed_as_approvals(gate, quarterly, store_db):
    with api.open_store(store_db[0], read_only=True) as store:
        waived = [r for r in store.policy_results().to_pylist() if r["outcome"] == "waived"]
    assert waived, "the fixture data holds at least one waiver"
    text = _flat(gate.text) + _flat(quarterly.text)
    for row in waived:
        line = f"waiver of {row['rule_id']}"
        assert line in text and row["waiver_owner"] in text
        assert row["waiver_reason"] in text and row["waiver_expiry"].isoformat() in text


def test_report_ranks_are_the_gates_ranks():
    """Ties share a rank and a NaN effect ranks first, as DuckDB's rank() in the gate does."""
    import duckdb

    from auditor.report.results import _ranked

    effects = [0.5, None, 0.5, -0.2, 0.1]
    rows = [{"stage_index": i, "stage_id": f"s{i}", "effect": e, "direction": "harm"}
            for i, e in enumerate(effects)]
    sql = duckdb.sql(
        "SELECT i, rank() OVER (ORDER BY e DESC) FROM (VALUES "
        + ", ".join(f"({i}, '{'nan' if e is None else e}'::DOUBLE)" for i, e in enumerate(effects))
        + ") t(i, e) ORDER BY i").fetchall()
    assert [row["rank"] for row in _ranked(rows)] == [rank for _, rank in sql] == [2, 1, 2, 5, 4]
