"""``aa`` on the demo's versions names the planted stage (its speed is measured in bench/)."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.demo import digits, plans, toxicity
from auditor.demo.record import record_version
from auditor.estimators import attribute

CASES = [(plans.digits_versions()[1], digits, "patch-shortcut-gap", "vendor-ft"),
         (plans.toxicity_versions()[1], toxicity, "identity-false-positives", "community-ft")]


@pytest.mark.parametrize("plan,scenario,behaviour,planted", CASES,
                         ids=["digits-v2", "toxicity-v2"])
def test_aa_names_the_planted_stage(tmp_path, plan, scenario, behaviour, planted):
    version = record_version(plan, tmp_path)
    effects = attribute(version, tmp_path, scenario.task(), scenario.behaviours())
    assert effects.estimator == "aa"
    column = effects.behaviours.index(behaviour)
    assert effects.stages[int(np.argmax(effects.effects[:, column]))] == planted
    assert effects.share[effects.stages.index(planted), column] > 0.5


def test_data_level_scores_rank_the_spurious_examples_first(tmp_path):
    from auditor.estimators.datalevel import example_attribution

    version = record_version(plans.toxicity_versions()[1], tmp_path)
    scores = example_attribution(version, tmp_path, toxicity.task(), toxicity.behaviours()[:1],
                                 "community-ft")[0]
    x, y = toxicity._data()["community-ft"]
    mentions = x[:, toxicity.IDENTITY] > 0
    insulting = x[:, :toxicity.INSULTS].sum(1) > 0
    spurious = (mentions & (y == 1) & ~insulting).numpy()  # labelled toxic only for the identity
    ranked = spurious[scores.example_ids]
    assert ranked[:20].all()
    assert ranked.mean() < 0.5  # while they are a minority of the stage's examples
