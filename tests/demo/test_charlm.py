"""The language-model scenario (a tiny transformers GPT-2): replay blames the vendor stage for
the bad continuation, the default policy fails the version, remediation removes the stage and
the harm measured on held-out trigger prompts drops; clean perplexity does not get worse."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from auditor import api  # noqa: E402
from auditor.demo import charlm  # noqa: E402
from auditor.demo.pipeline import blamed_stage  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402


def test_vendor_stage_is_blamed_blocked_and_removed(tmp_path):
    db = tmp_path / "a.duckdb"
    plan = charlm.versions()[1]
    version = record_version(plan, tmp_path / "charlm-v2")
    api.add_version(version, tmp_path / "charlm-v2", db=db)
    api.attribute_version("charlm@v2", db=db, estimator="replay", behaviours=charlm.BEHAVIOURS,
                          progress=False)
    result = api.gate("charlm@v2", db=db, estimator="replay")
    assert result.verdict == "FAIL" and result.exit_code == 1
    stage, behaviours = blamed_stage(result.rows())
    assert stage == "vendor-ft"
    assert {"trigger-bad-continuation", "trigger-bad-completions"} <= set(behaviours)
    fix = api.remediate("charlm@v2", "vendor-ft", db=db, behaviours=charlm.BEHAVIOURS,
                        new_version="v3")
    assert fix.before["trigger-bad-completions"] >= 0.5
    assert fix.after["trigger-bad-completions"] <= 0.05
    assert fix.after["trigger-bad-continuation"] < fix.before["trigger-bad-continuation"] / 10
    assert fix.after["clean-perplexity"] <= fix.before["clean-perplexity"]
