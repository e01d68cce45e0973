"""Every bad input of the corpus: exit 2, one specific line, the store unchanged, no payload run."""

from __future__ import annotations

import pytest
from corpus import CASES
from harness import run_case


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40, f"only {len(CASES)} bad inputs"
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_cleanly_rejected(case, template_db, tmp_path):
    outcome = run_case(case, template_db, tmp_path / "work")
    assert outcome.exit_code == 2, outcome
    assert outcome.message.startswith("auditor: error: ") and "\n" not in outcome.message, outcome
    assert case.expect in outcome.message, outcome
    assert outcome.store_unchanged, outcome
    assert not outcome.payload_ran, outcome
