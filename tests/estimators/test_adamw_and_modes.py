"""Nonlinear recorded runs (dropout, groups, frozen parameter, clipping, AdamW, Nesterov)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.behaviours.library import example_losses
from auditor.estimators import attribute
from tests.support.recorded import record_adamw, record_sgd


@pytest.mark.parametrize("record", [record_adamw, record_sgd])
def test_forward_and_reverse_modes_agree(tmp_path, record):
    task, rec = record(tmp_path)
    behaviours = example_losses("ex", task.x[:3], task.y[:3])
    forward = attribute(rec.lineage, tmp_path, task, behaviours, "aa-hessian", mode="forward",
                        adam="fixed")
    reverse = attribute(rec.lineage, tmp_path, task, behaviours, "aa-hessian", mode="reverse",
                        adam="fixed")
    scale = np.abs(forward.effects).max()
    assert np.abs(forward.effects - reverse.effects).max() <= 1e-6 * scale


@pytest.mark.parametrize("record", [record_adamw, record_sgd])
def test_estimators_track_replay(tmp_path, record):
    task, rec = record(tmp_path)
    behaviours = example_losses("ex", task.x[:16], task.y[:16])
    truth = attribute(rec.lineage, tmp_path, task, behaviours, "replay").effects
    for name in ("aa", "aa-hessian", "aa-ggn"):
        estimate = attribute(rec.lineage, tmp_path, task, behaviours, name)
        assert np.corrcoef(estimate.effects.ravel(), truth.ravel())[0, 1] > 0.9, name
        assert estimate.estimator == name and estimate.effects.shape == truth.shape
    # the last stage's effect is exact for every estimator: f(θ_T) − f(θ_{s_K}) to first order
    aa = attribute(rec.lineage, tmp_path, task, behaviours, "aa").effects
    assert np.allclose(aa[-1], truth[-1], rtol=0.2, atol=1e-3)


def test_adam_forms_and_hvp_implementations(tmp_path):
    from auditor.errors import EstimatorError
    from auditor.estimators.curvature.products import hessian_operator, hessian_operator_func
    from auditor.lineage.counterfactual import final_model
    from auditor.lineage.sketching.layout import ParamLayout
    from auditor.lineage.sketching.loss import LossModule

    task, rec = record_adamw(tmp_path)
    behaviours = example_losses("ex", task.x[:8], task.y[:8])
    truth = attribute(rec.lineage, tmp_path, task, behaviours, "replay").effects
    errors = {}
    for form in ("fixed", "jacobian", "jacobian+shift"):
        estimate = attribute(rec.lineage, tmp_path, task, behaviours, "aa-hessian", adam=form)
        errors[form] = np.abs(estimate.effects - truth).max()
    assert len(set(errors.values())) == 3  # the options change the numbers
    with pytest.raises(EstimatorError, match="reverse"):
        attribute(rec.lineage, tmp_path, task, behaviours, "aa-hessian", mode="reverse")
    model = final_model(rec.lineage, tmp_path, task).train()
    layout = ParamLayout.of(model)
    params = {n: p.detach() for n, p in model.named_parameters()}
    batch = task.batch("", list(range(8)))
    vector = torch.randn(layout.total, dtype=torch.float64)
    module = LossModule(model, task)
    by_autograd = hessian_operator(module, params, batch, 5, layout)(vector)
    by_func = hessian_operator_func(module, params, batch, 5, layout)(vector)
    assert torch.allclose(by_autograd, by_func, rtol=1e-4, atol=1e-6)
