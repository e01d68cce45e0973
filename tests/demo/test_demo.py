"""`auditor demo` end to end: the planted stages are blamed and blocked, the fixes pass, the
harm measured on held-out probes drops, and both signed reports verify; a second run reuses."""

from __future__ import annotations

import pytest

from auditor.demo.pipeline import run_demo
from auditor.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ray_session):
    return run_demo(tmp_path_factory.mktemp("demo"), executor="ray")


def test_bad_versions_fail_on_the_planted_stage_and_fixes_pass(demo):
    assert demo.verdicts == {"digits@v1": "PASS", "digits@v2": "FAIL", "toxicity@v1": "PASS",
                             "toxicity@v2": "FAIL", "digits@v3": "PASS", "toxicity@v3": "PASS",
                             "charlm@v1": "PASS", "charlm@v2": "FAIL", "charlm@v3": "PASS"}
    stage, behaviours = demo.blamed["digits@v2"]
    assert stage == "vendor-ft" and "patch-shortcut-gap" in behaviours
    stage, behaviours = demo.blamed["toxicity@v2"]
    assert stage == "community-ft" and "identity-false-positives" in behaviours
    stage, behaviours = demo.blamed["charlm@v2"]
    assert stage == "vendor-ft" and "trigger-bad-completions" in behaviours
    assert set(demo.blamed) == {"digits@v2", "toxicity@v2", "charlm@v2"}


def test_remediation_lowers_the_harm_on_held_out_probes(demo):
    fixes = {r.remediated: r for r in demo.remediations}
    digits, toxicity = fixes["digits@v3"], fixes["toxicity@v3"]
    assert digits.dropped_stage == "vendor-ft" and toxicity.dropped_stage == "community-ft"
    assert digits.after["patch-shortcut-gap"] < digits.before["patch-shortcut-gap"] - 0.05
    assert toxicity.after["identity-false-positives"] < (
        toxicity.before["identity-false-positives"] - 0.1)
    assert digits.after["clean-error"] < digits.before["clean-error"] + 0.02  # no collateral
    charlm = fixes["charlm@v3"]
    assert charlm.after["trigger-bad-completions"] < charlm.before["trigger-bad-completions"] - 0.3


def test_both_reports_are_signed_and_verify(demo):
    names = sorted(p.name for p in demo.reports)
    assert names == ["report-quarterly-2026-Q4.pdf", "report-release-gate-digits-v2.pdf"]
    assert all(demo.verified.values()) and demo.ok


def test_the_quarterly_body_is_at_most_12_pages_and_defines_every_behaviour(demo):
    """Issue #18's page budget, on the demo's own quarterly report (not a test store's): the
    body (summary → sign-off) ends within 12 pages, everything else is in the appendices; the
    behaviours section shows what the audit stored for every behaviour it measured."""
    import subprocess

    pdf = next(p for p in demo.reports if p.name == "report-quarterly-2026-Q4.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    pages = text.split("\f")
    appendix = next(i for i, page in enumerate(pages, 1)
                    if "Appendix A. Evaluated rows" in page and "Contents" not in page)
    assert appendix - 1 <= 12, f"the demo quarterly's body has {appendix - 1} pages"
    # page 1 states each blamed stage's share of the harm (certified rows carry it)
    assert "of its harm" in pages[0] and "share not finite" not in pages[0], pages[0]
    with Store.open(demo.layout.db, read_only=True) as store:
        defined = store.behaviours()
    measured = {"patch-shortcut-gap", "patched-odd-loss", "clean-error", "general-error",
                "identity-false-positives", "identity-nontoxic-loss", "clean-perplexity",
                "trigger-bad-completions", "trigger-bad-continuation"}
    assert {row["name"] for row in defined} == measured
    assert all(row["metric"] and row["probe_size"] and len(row["probe_digest"]) == 64
               for row in defined)
    section = text[text.index("What it measures"):]
    for row in defined:
        assert row["probe_digest"][:8] in section and row["metric"].split()[0] in section


def test_a_second_run_reuses_lineage_scores_and_fixes(demo):
    def counts():
        with Store.open(demo.layout.db, read_only=True) as store:
            return store.query("SELECT kind, count(*) AS n FROM runs GROUP BY kind ORDER BY kind")

    def scored():
        return [r for r in counts() if r["kind"] in ("attribution", "remediation")]

    before = scored()
    again = run_demo(demo.layout.root, executor="local")
    assert again.verdicts == demo.verdicts
    assert scored() == before  # nothing retrained, nothing re-attributed
    assert {r.remediated for r in again.remediations} == {"digits@v3", "toxicity@v3",
                                                          "charlm@v3"}
