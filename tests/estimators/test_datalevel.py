"""Data-form decomposition (docs/maths.md#data-level-attribution): exact reconstruction, and example scores that add up."""

from __future__ import annotations

import pytest

from auditor.behaviours.library import example_losses
from auditor.estimators import attribute
from auditor.estimators.datalevel import example_attribution, reconstruct_change
from tests.support.linreg import linear_behaviours, record_linreg
from tests.support.recorded import record_adamw


@pytest.mark.parametrize("convention", ["carry", "reset"])
def test_data_form_reconstructs_every_stage_change(tmp_path, convention):
    task, version = record_linreg(tmp_path, convention)
    for k in range(len(version.stages)):
        rebuilt, actual = reconstruct_change(version, tmp_path, task, k)
        assert float((rebuilt - actual).abs().max()) <= 1e-10 * float(actual.abs().max())


def test_data_form_reconstructs_adamw_with_groups_and_clipping(tmp_path):
    task, rec = record_adamw(tmp_path)  # float32: torch's own rounding bounds the match
    for k in range(len(rec.lineage.stages)):
        rebuilt, actual = reconstruct_change(rec.lineage, tmp_path, task, k)
        assert float((rebuilt - actual).abs().max()) <= 1e-4 * float(actual.abs().max())


def test_example_scores_add_up_to_the_stage_effect(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    behaviours = linear_behaviours(task, 2)
    effects = attribute(version, tmp_path, task, behaviours, "aa")
    scores = example_attribution(version, tmp_path, task, behaviours, "vendor")
    for q, result in enumerate(scores):
        assert result.total == pytest.approx(effects.effects[1, q], rel=1e-9)
        assert list(result.scores) == sorted(result.scores, reverse=True)
        assert len(set(result.example_ids.tolist())) == len(result.example_ids)


def test_example_scores_with_dropout_and_adamw(tmp_path):
    task, rec = record_adamw(tmp_path)
    behaviours = example_losses("ex", task.x[:2], task.y[:2])
    effects = attribute(rec.lineage, tmp_path, task, behaviours, "aa")
    scores = example_attribution(rec.lineage, tmp_path, task, behaviours, 0)
    for q, result in enumerate(scores):
        assert result.total == pytest.approx(effects.effects[0, q], rel=1e-4, abs=1e-7)


def test_hessian_corrected_example_scores_add_up_to_its_effects(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    behaviours = linear_behaviours(task, 2)
    effects = attribute(version, tmp_path, task, behaviours, "aa-hessian")
    truth = attribute(version, tmp_path, task, behaviours, "replay")
    for k in (0, 1):
        scores = example_attribution(version, tmp_path, task, behaviours, k,
                                     propagation="hessian")
        for q, result in enumerate(scores):
            assert result.total == pytest.approx(effects.effects[k, q], rel=1e-8)
            assert result.total == pytest.approx(truth.effects[k, q], rel=1e-8)
