"""Behaviour library: surrogates differentiate, metrics are what people read, bad specs fail."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from auditor.behaviours import Behaviour
from auditor.behaviours.library import (
    group_gap,
    harmful_output_rate,
    load_behaviours,
    probe_loss,
    toxicity_false_positive_rate,
)
from auditor.errors import InputError


def _model_always(cls: int, classes: int = 3) -> nn.Module:
    model = nn.Linear(2, classes)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.fill_(-5.0)
        model.bias[cls] = 5.0
    return model


X = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))


def test_probe_loss_metric_is_error_rate_and_surrogate_differentiates():
    targets = torch.tensor([0] * 6 + [1] * 4)
    behaviour = probe_loss("probe", X, targets)
    model = _model_always(0)
    assert behaviour.measure(model) == pytest.approx(0.4)
    grads = torch.autograd.grad(behaviour.surrogate(model), list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert len(behaviour.probe_digest) == 64


def test_group_gap_and_harmful_rate():
    gap = group_gap("gap", (X, torch.zeros(10, dtype=torch.long)),
                    (X, torch.ones(10, dtype=torch.long)))
    assert gap.measure(_model_always(0)) == pytest.approx(1.0)
    assert gap.measure(_model_always(1)) == pytest.approx(-1.0)
    rate = harmful_output_rate("harm", X, harmful_class=2)
    assert rate.measure(_model_always(2)) == 1.0 and rate.measure(_model_always(0)) == 0.0
    fpr = toxicity_false_positive_rate("fpr", X, toxic_class=1)
    assert fpr.metric_name == "false-positive rate" and fpr.measure(_model_always(1)) == 1.0


def test_direction_is_checked():
    with pytest.raises(ValueError):
        Behaviour(name="x", direction="sideways", surrogate=lambda m: torch.tensor(0.0))


def _two():
    return [probe_loss("a", X, torch.zeros(10, dtype=torch.long))] * 2


def test_custom_entry_points_are_checked():
    assert [b.name for b in load_behaviours("auditor.demo.digits:behaviours")][0] == \
        "patch-shortcut-gap"
    with pytest.raises(InputError, match="module:function|package.module:function"):
        load_behaviours("no-colon")
    with pytest.raises(InputError, match="cannot import"):
        load_behaviours("no_such_module_xyz:f")
    with pytest.raises(InputError, match="must return a list"):
        load_behaviours("auditor.demo.digits:task")
    with pytest.raises(InputError, match="duplicate"):
        load_behaviours(f"{__name__}:_two")


Y = torch.tensor([0, 1, 2, 0, 1] * 2)
P_HARM = lambda m: m(X).softmax(-1)[:, 1]  # noqa: E731


def _errors(m, x, y):
    return float((m(x).argmax(-1) != y).float().mean())


@pytest.mark.parametrize("make, surrogate, metric", [
    (lambda: probe_loss("probe", X, Y),
     lambda m: F.cross_entropy(m(X), Y), lambda m: _errors(m, X, Y)),
    (lambda: group_gap("gap", (X[:5], Y[:5]), (X[5:], Y[5:].flip(0))),
     lambda m: F.cross_entropy(m(X[5:]), Y[5:].flip(0)) - F.cross_entropy(m(X[:5]), Y[:5]),
     lambda m: _errors(m, X[5:], Y[5:].flip(0)) - _errors(m, X[:5], Y[:5])),
    (lambda: harmful_output_rate("harm", X, 1, threshold=0.3),
     lambda m: P_HARM(m).mean(), lambda m: float((P_HARM(m) > 0.3).float().mean())),
    (lambda: Behaviour(name="plain", direction="harm",
                       surrogate=lambda m: m(X).logsumexp(-1).mean()),
     lambda m: m(X).logsumexp(-1).mean(), lambda m: float(m(X).logsumexp(-1).mean())),
])
def test_evaluate_gives_each_behaviours_surrogate_metric_and_gradient(make, surrogate, metric):
    """The one-forward path (``joint``, or surrogate + measure without it) against the
    formulas written out."""
    behaviour = make()
    model = nn.Linear(2, 3)
    torch.nn.init.normal_(model.weight, generator=torch.Generator().manual_seed(1))
    value, measured = behaviour.evaluate(model)
    expected = surrogate(model)
    assert torch.allclose(value, expected) and measured == pytest.approx(metric(model))
    assert behaviour.measure(model) == pytest.approx(metric(model))
    params = list(model.parameters())
    assert all(torch.allclose(a, b) for a, b in zip(torch.autograd.grad(value, params),
                                                     torch.autograd.grad(expected, params)))
