"""The executive summary's content, from the session store (no rendering)."""

from __future__ import annotations

from auditor import api
from auditor.report.context import build_context
from auditor.report.settings import NOT_PROVIDED, ReportSettings
from auditor.report.summary import executive_summary


def test_quarterly_summary_blames_stages_with_shares_and_evidence(store_db):
    with api.open_store(store_db[0], read_only=True) as store:
        ctx = build_context(store, period="2026-Q4")
    summary = executive_summary(ctx)
    failing = [v.key for v in ctx.failing_versions]
    assert summary.verdict == "FAIL" and summary.decision.startswith("Do not release")
    assert all(key in summary.decision for key in failing)
    assert {b.version for b in summary.blamed} == set(failing)
    for blame in summary.blamed:
        version = next(v for v in ctx.versions if v.key == blame.version)
        stage = next(s for b in version.behaviours if b["name"] == blame.behaviour
                     for s in b["stages"] if s["stage_id"] == blame.stage_id)
        assert blame.share == stage["share"] and blame.effect == stage["effect"]
        assert blame.evidence and blame.share_text.endswith("of its harm")
    # nothing guessed: accountability is "not provided" without settings, the signer is shown
    assert dict(summary.accountable)["Accountable owner"] == NOT_PROVIDED
    assert any("independent reviewer" in step for step in summary.next_steps)
    assert any("remediate" in step for step in summary.next_steps)


def test_settings_fill_accountability(store_db):
    with api.open_store(store_db[0], read_only=True) as store:
        ctx = build_context(store, version=store_db[1][-1])
    settings = ReportSettings(accountable_owner="Dr. Owner", independent_reviewer="QA",
                              approval={"by": "CAB", "date": "2026-12-01"})
    summary = executive_summary(ctx, settings)
    rows = dict(summary.accountable)
    assert rows["Accountable owner"] == "Dr. Owner" and rows["Approval"] == "CAB, 2026-12-01"
    assert not any("independent reviewer" in step for step in summary.next_steps)


def test_traceability_reproduce_annex_and_retention(store_db):
    from auditor.report import traceability

    with api.open_store(store_db[0], read_only=True) as store:
        ctx = build_context(store, period="2026-Q4")
    steps = traceability.reproduce(ctx)
    assert any(c.startswith("auditor report --period 2026-Q4") for c in steps["commands"])
    assert any("seed" in s for s in steps["seeds"])  # report_data records a seed per audit
    assert str(store_db[0].parent) not in repr(steps)  # no machine paths
    points = traceability.annex_iv()
    assert any(p.point == "2(g)" and p.section for p in points)
    assert any(p.section is None and "outside this report" in p.how for p in points)
    assert any("10 years" in line and "Art. 18" in line for line in traceability.retention())


def test_rule_rows_carry_behaviours_and_policy_rationale(store_db):
    from auditor.report.definitions import rule_rows

    with api.open_store(store_db[0], read_only=True) as store:
        ctx = build_context(store, version=store_db[1][0])
    rows = {r["rule_id"]: r for r in rule_rows(ctx.versions[0])}
    assert rows["stage-toxicity-share"]["behaviours"] == ["toxicity"]
    assert rows["accuracy-floor"]["behaviours"] == ["accuracy"]
    # the test policy states no rationale: said so, never replaced by evaluation reasons
    assert {r["rationale"] for r in rows.values()} == {"not stated in the stored policy"}


def test_rationales_come_from_the_stored_policy_text():
    from auditor.report.definitions import rationales

    text = "rules:\n  - id: r1\n    rationale: >\n      No stage may cause\n      most harm.\n"
    runs = [{"run_id": "g1", "config": {"policy_text": text}},
            {"run_id": "other", "config": {"policy_text": "rules: [{id: r1, rationale: x}]"}},
            {"run_id": "g2", "config": {"policy_text": "{{not yaml"}}]
    assert rationales(runs, ["g1", "g2"]) == {"r1": "No stage may cause most harm."}
