"""Probe families: members scored in batched forward-mode passes give the effects and metrics
of scoring each member by its own gradient."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from auditor.behaviours import ProbeFamily
from auditor.behaviours.library import example_losses, probe_loss
from auditor.estimators import get_estimator
from auditor.estimators.scoring.families import families_of
from auditor.lineage.counterfactual import final_model
from tests.support.recorded import record_adamw, record_sgd


def _alone(behaviours):
    return [replace(b, family=None) for b in behaviours]


@pytest.mark.parametrize("record, estimator", [(record_sgd, "aa"), (record_adamw, "aa"),
                                               (record_adamw, "naive")])
def test_family_scoring_equals_scoring_each_member(tmp_path, record, estimator):
    task, rec = record(tmp_path)
    members = example_losses("ex", task.x[:24], task.y[:24])
    picked = [members[i] for i in (5, 2, 17, 9, 0)]  # a subset, out of order
    behaviours = [probe_loss("all", task.x, task.y), *picked, *members[18:]]
    assert [len(qs) for qs in families_of(behaviours).values()] == [11]
    chosen = get_estimator(estimator)
    embeddings = chosen.prepare(rec.lineage, tmp_path, task)
    model = final_model(rec.lineage, tmp_path, task)
    batched = chosen.score(embeddings, behaviours, model)
    single = chosen.score(embeddings, _alone(behaviours), model)
    assert np.allclose(batched.effects, single.effects, rtol=1e-4, atol=1e-7)
    assert np.any(batched.effects[:, 1:] != 0)
    assert batched.metric_values == pytest.approx(single.metric_values, abs=1e-6)
    assert set(batched.metric_values[1:]) <= {0.0, 1.0}  # a member's metric: misclassified


def test_replay_evaluates_a_family_in_batches_with_the_same_numbers(tmp_path):
    task, rec = record_sgd(tmp_path)
    behaviours = example_losses("ex", task.x[:16], task.y[:16])
    replay = get_estimator("replay")
    embeddings = replay.prepare(rec.lineage, tmp_path, task)
    model = final_model(rec.lineage, tmp_path, task)
    batched = replay.score(embeddings, behaviours, model).effects
    single = replay.score(embeddings, _alone(behaviours), model).effects
    assert np.allclose(batched, single, rtol=1e-5, atol=1e-7)


def test_a_family_member_alone_is_scored_by_its_own_gradient(tmp_path):
    task, rec = record_sgd(tmp_path)
    one = example_losses("ex", task.x[:4], task.y[:4])[2:3]
    assert families_of(one) == {}
    estimator = get_estimator("aa")
    embeddings = estimator.prepare(rec.lineage, tmp_path, task)
    model = final_model(rec.lineage, tmp_path, task)
    assert np.array_equal(estimator.score(embeddings, one, model).effects,
                          estimator.score(embeddings, _alone(one), model).effects)


class _NoForwardMode(torch.autograd.Function):
    """An op with no forward-mode rule: jvp raises, the family falls back to gradients."""

    @staticmethod
    def forward(x):
        return x * 2.0

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * 2.0


def test_a_family_without_forward_mode_falls_back_to_gradients(tmp_path):
    task, rec = record_sgd(tmp_path)
    members = example_losses("ex", task.x[:6], task.y[:6])
    doubled = ProbeFamily(inputs=members[0].family.inputs,
                          per_example=lambda out, i: _NoForwardMode.apply(
                              members[0].family.per_example(out, i)))
    behaviours = [replace(b, family=doubled,
                          surrogate=lambda m, b=b: _NoForwardMode.apply(b.surrogate(m)),
                          joint=None, metric=None) for b in members]
    estimator = get_estimator("aa")
    embeddings = estimator.prepare(rec.lineage, tmp_path, task)
    model = final_model(rec.lineage, tmp_path, task)
    fell_back = estimator.score(embeddings, behaviours, model).effects
    plain = estimator.score(embeddings, members, model).effects
    assert np.allclose(fell_back, 2.0 * plain, rtol=1e-4, atol=1e-7)
