"""replay's bookkeeping on disk (docs/scaling.md#replay): the same effects and displacements
bit for bit, one counterfactual model's tensors in memory at a time."""

from __future__ import annotations

import numpy as np
import torch

from auditor.estimators import get_estimator
from auditor.estimators.replay_spill import CounterfactualModels, SpillFolder
from auditor.lineage.counterfactual import final_model
from tests.support.linreg import linear_behaviours, record_linreg


def _run(tmp_path, task, version, **settings):
    estimator = get_estimator("replay", **settings)
    embeddings = estimator.prepare(version, tmp_path, task)
    model = final_model(version, tmp_path, task)
    return embeddings, estimator.score(embeddings, linear_behaviours(task), model)


def test_spilled_replay_is_bitwise_the_in_memory_one(tmp_path):
    task, version = record_linreg(tmp_path, "carry")
    held, held_effects = _run(tmp_path, task, version)
    spilled, spilled_effects = _run(tmp_path, task, version, spill_above_mb=0)
    assert spilled.state.counterfactuals.folder is not None
    assert held.state.counterfactuals.folder is None
    assert np.abs(held_effects.effects).max() > 1e-3
    assert np.array_equal(held_effects.effects, spilled_effects.effects)
    assert held_effects.config_hash == spilled_effects.config_hash
    for mine, theirs in zip(held.vectors, spilled.vectors):
        assert sorted(mine) == sorted(theirs)
        for name in mine:
            assert mine[name].dtype == torch.float64
            assert torch.equal(mine[name], theirs[name])
    # after prepare and after score, every spilled model holds no tensor data
    for model in spilled.state.counterfactuals.models.values():
        assert all(t.numel() == 0 for t in model.parameters())
    files = list(spilled.state.counterfactuals.folder.folder.glob("*.safetensors"))
    assert files


def test_spilled_replay_of_some_stages_gives_zero_displacements_elsewhere(tmp_path):
    task, version = record_linreg(tmp_path, "reset")
    embeddings, effects = _run(tmp_path, task, version, spill_above_mb=0, stages=(1,))
    assert np.isnan(effects.effects[0]).all() and np.isfinite(effects.effects[1]).all()
    assert all(not t.any() for t in embeddings.vectors[0].values())
    assert any(t.any() for t in embeddings.vectors[1].values())


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.tensor([1.5, 2.5]), persistent=False)


def test_a_spilled_model_comes_back_bitwise_with_tied_weights_tied():
    torch.manual_seed(0)
    model = _Tied()
    before = {name: t.clone() for name, t in model.state_dict(keep_vars=True).items()}
    before["scale"] = model.scale.clone()
    model.embed.weight.grad = torch.ones_like(model.embed.weight)
    models = CounterfactualModels(SpillFolder(group_bytes=16))  # several files
    models.keep(2, model)
    assert model.embed.weight.numel() == 0 and model.scale.numel() == 0
    assert model.embed.weight.grad is None
    for k, loaded in models.loaded():
        assert k == 2 and loaded is model
        assert loaded.head.weight is loaded.embed.weight
        assert torch.equal(loaded.embed.weight, before["embed.weight"])
        assert torch.equal(loaded.scale, before["scale"])
    assert model.embed.weight.numel() == 0  # emptied again after use


def test_a_spilled_channels_last_weight_keeps_its_strides():
    conv = torch.nn.Conv2d(2, 3, 2).to(memory_format=torch.channels_last)
    strides, values = conv.weight.stride(), conv.weight.detach().clone()
    models = CounterfactualModels(SpillFolder(group_bytes=2**20))
    models.keep(0, conv)
    for _, loaded in models.loaded():
        assert loaded.weight.stride() == strides
        assert torch.equal(loaded.weight, values)
