"""Exactness on linear regression (float64, K = 4): the curvature-aware estimator is replay."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.errors import EstimatorError
from auditor.estimators import attribute, get_estimator
from auditor.lineage.counterfactual import final_model
from tests.support.linreg import linear_behaviours, record_linreg


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("convention", ["carry", "reset"])
def test_hessian_equals_replay(tmp_path, convention):
    task, version = record_linreg(tmp_path, convention)
    behaviours = linear_behaviours(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    forward = attribute(version, tmp_path, task, behaviours, "aa-hessian", mode="forward").effects
    reverse = attribute(version, tmp_path, task, behaviours, "aa-hessian", mode="reverse").effects
    assert np.abs(truth).max() > 1e-3  # the stages do move the behaviours
    assert _relative(forward, truth) <= 1e-8
    assert _relative(reverse, forward) <= 1e-8


@pytest.mark.parametrize("convention", ["carry", "reset"])
def test_gauss_newton_is_the_hessian_of_a_linear_model_so_equals_replay(tmp_path, convention):
    """Linear model, squared loss: Jᵀ H_out J is the Hessian, so aa-ggn (Gauss–Newton) is
    exact, in both modes; the empirical Fisher is not."""
    task, version = record_linreg(tmp_path, convention)
    behaviours = linear_behaviours(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    forward = attribute(version, tmp_path, task, behaviours, "aa-ggn", mode="forward").effects
    reverse = attribute(version, tmp_path, task, behaviours, "aa-ggn", mode="reverse").effects
    fisher = attribute(version, tmp_path, task, behaviours, "aa-ggn", curvature="fisher").effects
    assert _relative(forward, truth) <= 1e-8
    assert _relative(reverse, truth) <= 1e-8
    assert _relative(fisher, truth) > 1e-6


def test_gauss_newton_needs_one_model_call_per_loss(tmp_path):
    task, version = record_linreg(tmp_path, "carry")

    class TwiceTask(type(task)):
        def loss(self, model, batch, reduction="mean"):
            x, y = batch
            errors = ((model(x) + model(x)) / 2 - y).squeeze(-1) ** 2
            return errors.mean() if reduction == "mean" else errors

    twice = TwiceTask.__new__(TwiceTask)
    twice.__dict__.update(task.__dict__)
    with pytest.raises(EstimatorError, match="call the model once.*curvature='fisher'"):
        attribute(version, tmp_path, twice, linear_behaviours(task), "aa-ggn")
    fisher = attribute(version, tmp_path, twice, linear_behaviours(task), "aa-ggn",
                       curvature="fisher")
    assert np.isfinite(fisher.effects).all()
    with pytest.raises(EstimatorError, match="curvature must be one of"):
        get_estimator("aa-ggn", curvature="exact")


def test_hessian_exact_with_nesterov(tmp_path):
    task, version = record_linreg(tmp_path, "carry", nesterov=True)
    behaviours = linear_behaviours(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    forward = attribute(version, tmp_path, task, behaviours, "aa-hessian").effects
    assert _relative(forward, truth) <= 1e-8


def test_aa_equals_naive_without_decay_under_reset(tmp_path):
    task, version = record_linreg(tmp_path, "reset", weight_decay=0.0)
    behaviours = linear_behaviours(task)
    aa = attribute(version, tmp_path, task, behaviours, "aa").effects
    naive = attribute(version, tmp_path, task, behaviours, "naive").effects
    assert np.array_equal(aa, naive)


def test_aa_differs_from_naive_with_decay_and_carry(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    behaviours = linear_behaviours(task)
    aa = attribute(version, tmp_path, task, behaviours, "aa").effects
    naive = attribute(version, tmp_path, task, behaviours, "naive").effects
    assert not np.allclose(aa, naive)
    assert np.allclose(aa[-1], naive[-1])  # nothing follows the last stage


def test_auto_mode_takes_reverse_for_few_behaviours(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    estimator = get_estimator("aa-hessian")
    estimator.plan_for(1)
    embeddings = estimator.prepare(version, tmp_path, task)
    assert embeddings.mode == "reverse"
    effects = estimator.score(embeddings, linear_behaviours(task, 1),
                              final_model(version, tmp_path, task))
    truth = attribute(version, tmp_path, task, linear_behaviours(task, 1), "replay").effects
    assert _relative(effects.effects, truth) <= 1e-8


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_kinds_modes_agree_and_are_deterministic(tmp_path, kind):
    task, version = record_linreg(tmp_path, "carry", optimizer_kind=kind, weight_decay=0.05)
    behaviours = linear_behaviours(task, 3)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    forward = attribute(version, tmp_path, task, behaviours, "aa-hessian", mode="forward",
                        adam="fixed").effects
    reverse = attribute(version, tmp_path, task, behaviours, "aa-hessian", mode="reverse",
                        adam="fixed").effects
    assert _relative(reverse, forward) <= 1e-8
    for name in ("aa", "aa-hessian", "aa-ggn"):
        first = attribute(version, tmp_path, task, behaviours, name)
        again = attribute(version, tmp_path, task, behaviours, name)
        assert np.array_equal(first.effects, again.effects) and np.isfinite(first.effects).all()
        assert np.allclose(first.effects[-1], truth[-1], rtol=1e-9)  # linear f: last stage exact
    best = attribute(version, tmp_path, task, behaviours, "aa-hessian").effects
    assert np.corrcoef(best.ravel(), truth.ravel())[0, 1] > 0.9
