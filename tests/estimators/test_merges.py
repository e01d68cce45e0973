"""A stage that starts by merging an adapter pair into its base weight (W' = W + s·B·A,
docs/maths.md#merged-adapters): the Recorder recognises the merge when the stage starts (or
refuses it there, naming the tensor), and every estimator carries tangents through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auditor.errors import EstimatorError, LineageError
from auditor.estimators import attribute
from auditor.lineage.continuation import check_declared_changes
from auditor.lineage.recorder import Recorder
from tests.support.merged import MergedTask, output_probes, record_lora_merged, record_merged

ESTIMATORS = ["aa", "naive", "tracin", "aa-hessian", "aa-ggn"]


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per stage: the largest error over behaviours, relative to the largest effect."""
    return np.abs(a - b).max(axis=1) / np.abs(b).max()


def test_a_merged_factor_pair_keeps_the_curvature_estimators_exact(tmp_path):
    """Linear model, squared loss, linear behaviours; the adapter stage trains W and B (A
    frozen), so every step map and the merge are affine in what moves: aa-hessian and aa-ggn
    equal replay for every stage."""
    task, version = record_merged(tmp_path)
    change = version.stage("merged").changes
    assert change.recomputed == ["lin.weight"] and change.removed
    (merge,) = change.merges
    assert (merge.base, merge.weight) == ("lin.base_layer.weight", "lin.weight")
    assert merge.a == "lin.lora_A.default.weight" and not merge.transpose
    assert merge.scale == pytest.approx(MergedTask.SCALE, rel=1e-12)  # fitted: no peft layer
    behaviours = output_probes(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    assert np.abs(truth).max(axis=1).min() > 1e-2  # every stage moves the behaviours
    for name in ("aa-hessian", "aa-ggn"):
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert _relative(found, truth).max() <= 1e-8, name
    for name in ("aa", "naive", "tracin"):  # first-order: finite, no stage silently zero
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert np.isfinite(found).all() and (np.abs(found).max(axis=1) > 1e-3).all(), name


def test_the_merge_carries_the_adapter_stage_exactly_when_both_factors_train(tmp_path):
    """With A trained too the model is bilinear inside the adapter stage (earlier stages are
    approximated), but the adapter stage's own displacement crosses the merge by the exact
    difference s·(B_e·A_e − B_s·A_s): its effect, and the merge stage's, equal replay's."""
    task, version = record_merged(tmp_path, train_a=True)
    behaviours = output_probes(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    adapter = version.stages.index(version.stage("adapter"))
    for name in ("aa-hessian", "aa-ggn"):
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert _relative(found, truth)[adapter:].max() <= 1e-8, name
        assert np.isfinite(found).all()


@pytest.fixture(scope="module")
def merged_lineage(tmp_path_factory):
    pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("merged")
    task, version = record_lora_merged(root)
    return root, task, version


def test_a_peft_merge_is_attributed_by_every_estimator_as_replay_blames_it(merged_lineage):
    from tests.support.grown import lora_behaviours

    root, task, version = merged_lineage
    change = version.stage("merged").changes
    assert [m.weight for m in change.merges] == ["fc1.weight", "fc2.weight"]
    assert all(m.scale == 2.0 for m in change.merges)  # peft's lora_alpha / r, read from peft
    assert all("lora_" in n for n in change.removed)
    behaviours = lora_behaviours(task)
    truth = attribute(version, root, task, behaviours, "replay").effects
    planted = version.stages.index(version.stage("vendor-lora"))
    assert int(np.argmax(truth[:, 0])) == planted and truth[planted, 0] > 0
    for name in ESTIMATORS:
        found = attribute(version, root, task, behaviours, name).effects
        assert found.shape == truth.shape and np.isfinite(found).all(), name
        assert (np.abs(found).max(axis=1) > 0).all(), name  # no stage silently zero
        assert int(np.argmax(found[:, 0])) == planted and found[planted, 0] > 0, name
    for name in ("aa", "naive"):  # streamed in chunks of rows, spilled, equals whole-model
        whole = attribute(version, root, task, behaviours, name, stream=False).effects
        chunked = attribute(version, root, task, behaviours, name, workspace_mb=1e-4,
                            spill_above_mb=64).effects  # held in memory: bit for bit
        spilled = attribute(version, root, task, behaviours, name, workspace_mb=1e-4,
                            spill_above_mb=0).effects
        assert np.array_equal(chunked, whole), name
        assert np.allclose(spilled, whole, rtol=1e-6, atol=1e-12), name


def test_a_recorded_merge_is_checked_when_the_lineage_is_read(merged_lineage, tmp_path):
    root, _, version = merged_lineage
    check_declared_changes(version, root)
    stages = list(version.stages)
    merged = version.stage("merged")
    change = merged.changes
    forged = change.model_copy(update={"merges": [
        change.merges[0].model_copy(update={"scale": 3.0}), *change.merges[1:]]})
    stages[stages.index(merged)] = merged.model_copy(update={"changes": forged})
    with pytest.raises(LineageError, match="'fc1.weight' is not the recorded merge") as info:
        check_declared_changes(version.model_copy(update={"stages": stages}), root)
    assert "\n" not in str(info.value)


def test_a_recomputed_tensor_that_is_not_a_merge_is_refused_at_stage_start(tmp_path):
    """Declared with recomputes=, but W' − W is not s·B·A: one line naming the tensor, before
    the stage's body runs; a lineage whose recomputed tensor has no merge description (written
    by hand) is still attributed by replay only."""
    task = MergedTask()
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="merged", version="x", seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(stage_id):
        rec.batch([0, 1])
        optimizer.zero_grad()
        task.loss(model, task.batch(stage_id, [0, 1])).backward()
        optimizer.step()

    with rec.stage("pretrain", kind="pretrain", optimizer=optimizer):
        step("pretrain")
    task.adapt(model, "adapter")
    with rec.stage("adapter", kind="fine-tune", optimizer=optimizer, model=model,
                   adds=["*lora_*"]):
        step("adapter")
    with torch.no_grad():
        model.lin.lora_B["default"].weight.normal_()
    task.adapt(model, "merged")
    with torch.no_grad():
        model.lin.weight[0, 0] += 0.5  # not part of the merge
    ran = []
    with pytest.raises(LineageError, match="tensor 'lin.weight' was recomputed, but not as a "
                                           "LoRA merge") as info:
        with rec.stage("merged", kind="fine-tune", optimizer=optimizer, model=model,
                       removes=["*lora_*"], recomputes=["lin.weight"]):
            ran.append(True)
    assert "\n" not in str(info.value) and not ran


def test_an_undescribed_recompute_is_left_to_replay(merged_lineage):
    from tests.support.grown import lora_behaviours

    root, task, version = merged_lineage
    stages = list(version.stages)
    merged = version.stage("merged")
    stages[stages.index(merged)] = merged.model_copy(update={"changes": merged.changes.model_copy(
        update={"merges": []})})
    bare = version.model_copy(update={"stages": stages})
    with pytest.raises(EstimatorError, match="without a recorded merge description; use replay"):
        attribute(bare, root, task, lora_behaviours(task), "aa")
