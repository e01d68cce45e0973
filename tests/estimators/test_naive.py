"""The naive baseline: e_k is the stage's own parameter change, scored by one gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.behaviours.library import probe_loss
from auditor.errors import EstimatorError
from auditor.estimators import ESTIMATORS, attribute, get_estimator
from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.counterfactual import final_model
from tests.support.recorded import record_sgd


def test_naive_effects_are_gradient_dot_stage_change(tmp_path):
    task, rec = record_sgd(tmp_path)
    behaviour = probe_loss("probe", task.x[:16], task.y[:16])
    effects = attribute(rec.lineage, tmp_path, task, [behaviour], "naive")
    assert effects.effects.shape == (3, 1)
    assert effects.stages == ("pretrain", "finetune", "polish")
    model = final_model(rec.lineage, tmp_path, task).eval()
    value = behaviour.surrogate(model)
    grads = torch.autograd.grad(value, list(model.parameters()))
    stage = rec.lineage.stages[1]
    before, after = load_tensors(stage.theta_start, tmp_path), load_tensors(stage.theta_end, tmp_path)
    names = [name for name, _ in model.named_parameters()]
    expected = sum(float((g.double() * (after[n] - before[n]).double()).sum())
                   for n, g in zip(names, grads))
    assert effects.effect("finetune", "probe") == pytest.approx(expected, rel=1e-6)  # float32 gradients


def test_same_inputs_give_identical_numbers(tmp_path):
    task, rec = record_sgd(tmp_path)
    behaviour = probe_loss("probe", task.x, task.y)
    first = attribute(rec.lineage, tmp_path, task, [behaviour], "naive")
    second = attribute(rec.lineage, tmp_path, task, [behaviour], "naive")
    assert np.array_equal(first.effects, second.effects)
    assert first.config_hash == second.config_hash


def test_share_splits_harm_over_stages_that_add_it():
    from auditor.estimators import StageEffects
    effects = StageEffects(model="m", version="v", stages=("a", "b", "c"),
                           stage_kinds=("pretrain", "fine-tune", "alignment"),
                           behaviours=("harm", "good"), directions=("harm", "benefit"),
                           effects=np.array([[1.0, 1.0], [3.0, -1.0], [-2.0, 0.0]]),
                           estimator="naive", estimator_version="1", convention="reset",
                           config_hash="x", runtime_s=0.0, metric_values=(0.1, 0.9))
    assert effects.share[:, 0].tolist() == [0.25, 0.75, 0.0]
    assert effects.share[:, 1].tolist() == [0.0, 1.0, 0.0]


def test_unknown_estimator_names_the_known_ones():
    assert "naive" in ESTIMATORS
    with pytest.raises(EstimatorError, match="known: .*naive"):
        get_estimator("nope")
