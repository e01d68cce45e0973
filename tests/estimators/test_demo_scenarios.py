"""``aa`` on the demo's versions: fast, and it names the planted stage."""

from __future__ import annotations

import time

import numpy as np
import pytest

from auditor.demo import digits, plans, toxicity
from auditor.demo.record import record_version
from auditor.estimators import attribute

CASES = [(plans.digits_versions()[1], digits, "patch-shortcut-gap", "vendor-ft"),
         (plans.toxicity_versions()[1], toxicity, "identity-false-positives", "community-ft")]


@pytest.mark.parametrize("plan,scenario,behaviour,planted", CASES,
                         ids=["digits-v2", "toxicity-v2"])
def test_aa_names_the_planted_stage_in_seconds(tmp_path, plan, scenario, behaviour, planted):
    version = record_version(plan, tmp_path)
    started = time.perf_counter()
    effects = attribute(version, tmp_path, scenario.task(), scenario.behaviours())
    elapsed = time.perf_counter() - started
    assert effects.estimator == "aa"
    column = effects.behaviours.index(behaviour)
    assert effects.stages[int(np.argmax(effects.effects[:, column]))] == planted
    assert effects.share[effects.stages.index(planted), column] > 0.5
    assert elapsed < 15.0  # ~0.05 s on an idle core; generous for a shared, loaded machine
