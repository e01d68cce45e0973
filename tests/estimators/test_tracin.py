"""TracIn against a value computed by hand: plain SGD on linear regression, replayed in numpy.

With f(θ) = ½‖θ‖², ∇f(θ_c) = θ_c, so TracInCP's stage effect is Σ_c θ_cᵀ v_c with
v_c = −Σ_{t in segment c} η_t g_t. The trajectory θ_t, the learning rates η_t = lr·0.93ᵗ and
the gradients g_t of the mean squared error are recomputed here from the logged batch ids,
without the estimator's code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.behaviours.base import Behaviour
from auditor.estimators import attribute
from auditor.lineage.checkpoints import load_tensors
from tests.support.linreg import STAGES, record_linreg


def half_square(model: torch.nn.Module) -> torch.Tensor:
    return 0.5 * sum((p ** 2).sum() for p in model.parameters())


def by_hand(task, version, root, checkpoints: int) -> np.ndarray:
    start = load_tensors(version.stages[0].theta_start, root)
    theta = np.concatenate([start["weight"].numpy().ravel(), start["bias"].numpy().ravel()])
    effects = []
    for stage, (stage_id, steps, lr) in zip(version.stages, STAGES, strict=True):
        cuts = {int(i * steps / checkpoints) for i in range(min(checkpoints, steps))}
        effect, point, segment = 0.0, None, None
        for t, ids in enumerate(stage.batch_ids):
            if t in cuts:
                if point is not None:
                    effect += point @ segment
                point, segment = theta.copy(), np.zeros_like(theta)
            x, y = (v.numpy() for v in task.batch(stage_id, ids))
            rows = np.hstack([x, np.ones((len(x), 1))])
            residual = rows @ theta - y[:, 0]
            gradient = 2.0 * rows.T @ residual / len(x)
            eta = lr * 0.93 ** t
            segment -= eta * gradient
            theta = theta - eta * gradient
        effects.append(effect + point @ segment)
    return np.array(effects)


@pytest.mark.parametrize("checkpoints", [1, 2, 9])
def test_tracin_equals_the_hand_computed_sum(tmp_path, checkpoints):
    task, version = record_linreg(tmp_path, "reset", weight_decay=0.0, momentum=0.0)
    behaviour = Behaviour(name="half-square", direction="harm", surrogate=half_square)
    estimate = attribute(version, tmp_path, task, [behaviour], "tracin",
                         checkpoints=checkpoints).effects[:, 0]
    expected = by_hand(task, version, tmp_path, checkpoints)
    assert np.abs(expected).min() > 1e-3  # every stage moves f
    assert np.allclose(estimate, expected, rtol=1e-10, atol=1e-12)


def test_the_checkpoints_setting_changes_the_estimate(tmp_path):
    task, version = record_linreg(tmp_path, "reset", weight_decay=0.0, momentum=0.0)
    one, every = (by_hand(task, version, tmp_path, c) for c in (1, 9))
    assert np.abs(one - every).max() > 1e-4 * np.abs(every).max()


def test_streamed_tracin_keeps_its_segments_on_disk_and_the_same_bits(tmp_path):
    """stream=True (the default) writes θ_c, v_c and the stage embeddings to disk one at a
    time; effects and embeddings equal the whole-memory form's bit for bit."""
    from auditor.estimators import get_estimator
    from auditor.lineage.counterfactual import final_model

    task, version = record_linreg(tmp_path, "carry")
    behaviour = Behaviour(name="half-square", direction="harm", surrogate=half_square)
    model = final_model(version, tmp_path, task)
    streamed = get_estimator("tracin", checkpoints=3)
    held = get_estimator("tracin", checkpoints=3, stream=False)
    assert streamed.config_hash == held.config_hash  # not in the config hash
    on_disk = streamed.prepare(version, tmp_path, task)
    in_memory = held.prepare(version, tmp_path, task)
    assert not on_disk.state.segments and on_disk.state.store.count(1) == 3
    for disk, memory in zip(on_disk.vectors, in_memory.vectors, strict=True):
        assert set(disk) == set(memory)
        assert all(torch.equal(disk[name], memory[name]) for name in memory)
    a = streamed.score(on_disk, [behaviour], model).effects
    b = streamed.score(in_memory, [behaviour], model).effects
    assert np.array_equal(a, b) and np.abs(a).min() > 0
