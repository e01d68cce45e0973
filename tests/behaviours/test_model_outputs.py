"""Models as they are: behaviours read logits from a tensor, a ModelOutput, a dict or a tuple,
the language behaviours run on a real (tiny) transformers GPT-2, and everything is measured in
eval mode without changing the caller's mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auditor.behaviours.language import (
    continuation_probability,
    greedy_completion_rate,
    perplexity,
)
from auditor.behaviours.library import (
    example_losses,
    group_gap,
    harmful_output_rate,
    probe_loss,
    toxicity_false_positive_rate,
)
from auditor.errors import InputError
from auditor.outputs import logits_of

transformers = pytest.importorskip("transformers")

X = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (12,), generator=torch.Generator().manual_seed(1))


class Wrapped(nn.Module):
    """A classifier with dropout whose forward returns ``kind`` of output."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
        self.kind = kind

    def forward(self, x):
        logits = self.net(x)
        if self.kind == "modeloutput":
            from transformers.modeling_outputs import SequenceClassifierOutput

            return SequenceClassifierOutput(logits=logits)
        if self.kind == "dict":
            return {"hidden": x, "logits": logits}
        if self.kind == "tuple":
            return (logits, x)
        return logits


def _library():
    return [probe_loss("loss", X, Y), group_gap("gap", (X[:6], Y[:6]), (X[6:], Y[6:])),
            harmful_output_rate("harm", X, 2), toxicity_false_positive_rate("fpr", X),
            *example_losses("ex", X[:2], Y[:2])]


@pytest.mark.parametrize("kind", ["modeloutput", "dict", "tuple"])
def test_every_library_behaviour_reads_the_same_logits_as_from_a_tensor(kind):
    plain, wrapped = Wrapped("tensor").train(), Wrapped(kind).train()
    for behaviour in _library():
        assert behaviour.measure(wrapped) == behaviour.measure(plain)
        value, metric = behaviour.evaluate(wrapped)
        grads = torch.autograd.grad(value, list(wrapped.parameters()))
        assert all(torch.isfinite(g).all() for g in grads) and metric == behaviour.measure(plain)
    family = _library()[-1].family
    assert torch.equal(family.per_example(wrapped.eval()(X[:2]), torch.arange(2)),
                       family.per_example(plain.eval()(X[:2]), torch.arange(2)))


def test_measurement_is_in_eval_mode_and_leaves_the_mode_alone():
    model = Wrapped("modeloutput").train()
    behaviour = probe_loss("loss", X, Y)
    first = behaviour.measure(model)
    assert model.training and model.net[1].training  # the caller's mode is restored
    assert behaviour.measure(model) == first  # dropout off: the same value every time
    with torch.no_grad():
        expected = nn.functional.cross_entropy(model.eval()(X).logits, Y)
    assert float(behaviour.evaluate(model.train())[0]) == pytest.approx(float(expected))


def test_a_task_specific_logits_reader_and_a_clear_error():
    class Heads(nn.Module):
        def forward(self, x):
            return {"scores": x[:, :3]}

    with pytest.raises(InputError, match="without a 'logits' tensor"):
        probe_loss("loss", X, Y).measure(Heads())
    behaviour = probe_loss("loss", X, Y, logits=lambda out: out["scores"])
    assert 0.0 <= behaviour.measure(Heads()) <= 1.0
    with pytest.raises(InputError, match="cannot find logits"):
        logits_of("text")


def _tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=12, n_positions=16, n_embd=16, n_layer=1,
                                     n_head=2)
    return transformers.GPT2LMHeadModel(config).train()


def test_language_behaviours_on_a_real_gpt2():
    model = _tiny_gpt2()
    prompts = torch.randint(0, 12, (5, 4), generator=torch.Generator().manual_seed(2))
    bad = torch.tensor([7, 7])
    prob = continuation_probability("p-bad", prompts, bad)
    rate = greedy_completion_rate("greedy-bad", prompts, bad)
    ppl = perplexity("ppl", prompts)
    p = prob.measure(model)
    assert 0.0 < p < 1.0 and p == prob.measure(model) and model.training
    assert rate.measure(model) in {k / 5 for k in range(6)}
    assert 1.0 < ppl.measure(model) < 100.0
    # read through a logits function that always says 7: every prompt completes with 7 7
    always_seven = lambda out: torch.nn.functional.one_hot(  # noqa: E731
        torch.full(logits_of(out).shape[:-1], 7), 12).float() * 10
    assert greedy_completion_rate("g", prompts, bad, logits=always_seven).measure(model) == 1.0
    value, _ = prob.evaluate(model)
    grads = torch.autograd.grad(value, [p for p in model.parameters() if p.requires_grad])
    assert sum(float(g.abs().sum()) for g in grads) > 0
