"""Every tamper case is detected by the command that should notice it."""

from __future__ import annotations

import pytest
from tamper import TAMPERS, copy_evidence, detected, make_evidence


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    return make_evidence(tmp_path_factory.mktemp("evidence"))


def test_untouched_evidence_passes_every_check(evidence, tmp_path):
    from tamper import _log_verify, _verify_report, run

    copy = copy_evidence(evidence, tmp_path / "copy")
    for argv in (_log_verify(copy), _verify_report(copy)):
        code, output = run(argv)
        assert code == 0, output


@pytest.mark.parametrize("case", TAMPERS, ids=[c.name for c in TAMPERS])
def test_tampering_is_detected(case, evidence, tmp_path):
    found, output = detected(case, copy_evidence(evidence, tmp_path / "copy"))
    assert found, f"{case.name} went unnoticed (wanted exit {case.exit_code}):\n{output}"
