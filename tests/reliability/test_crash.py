"""SIGKILL ``auditor audit`` at 20 seeded random moments: every time the store opens, its log is
intact, no partial run counts, and finishing the audit gives the uninterrupted run's scores."""

from __future__ import annotations

import shutil

import pytest
from crash import crash_trial, make_fixture, run_audit, scores

pytestmark = pytest.mark.slow
TRIALS = 20


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    template, spec = make_fixture(folder)
    reference_db = folder / "reference.duckdb"
    shutil.copy(template, reference_db)
    took = run_audit(spec, reference_db)
    return template, spec, scores(reference_db), took


def test_reference_audit_scores_every_version(fixture):
    _, _, reference, _ = fixture
    assert len({(row[0], row[1]) for row in reference}) == 6


@pytest.mark.parametrize("seed", range(TRIALS))
def test_killed_audit_recovers_with_identical_scores(seed, fixture, tmp_path):
    template, spec, reference, took = fixture
    trial = crash_trial(seed, template, spec, tmp_path, reference, longest_s=took)
    assert trial.store_opens and trial.log_intact and trial.no_partial_run, trial
    assert trial.same_scores, trial
