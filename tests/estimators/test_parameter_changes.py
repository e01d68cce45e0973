"""Lineages whose stages change the parameter set (docs/maths.md#changing-parameter-sets): a
stage that adds a parameter block or LoRA adapters (real peft), a stage that freezes a weight.
Every estimator works in the union of the lineage's parameters and means what replay means."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.errors import EstimatorError
from auditor.estimators import attribute
from tests.support.grown import linear_probes, lora_behaviours, record_grown, record_lora

ESTIMATORS = ["aa", "naive", "tracin", "aa-hessian", "aa-ggn"]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("convention", ["carry", "reset"])
def test_an_added_block_and_a_frozen_weight_keep_the_curvature_estimators_exact(tmp_path,
                                                                                convention):
    """Linear model, squared loss, linear behaviours: the step map is affine in the union of
    the parameters, so aa-hessian and aa-ggn equal replay, whichever stage is left out."""
    task, version = record_grown(tmp_path, convention)
    assert version.stage("extra").changes.added == ["extra.weight"]
    polish = version.stage("polish").optimizer.groups
    assert not any("base.weight" in g.params and "base.weight" not in g.frozen for g in polish)
    behaviours = linear_probes(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    assert np.abs(truth).min() > 1e-3  # every stage moves every behaviour
    for name in ("aa-hessian", "aa-ggn"):
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert _relative(found, truth) <= 1e-8, name
    for name in ("aa", "naive", "tracin"):  # first-order: finite, every stage non-zero
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert np.isfinite(found).all() and (np.abs(found).max(axis=1) > 0).all(), name


def test_a_removed_block_still_couples_through_curvature_before_its_removal(tmp_path):
    """The extra block is added, trained, then removed: the union keeps its block (it moved the
    other parameters' gradients while it existed), and the estimators stay exact."""
    task, version = record_grown(tmp_path, "reset", drop_extra=True)
    assert version.stage("polish").changes.removed == ["extra.weight"]
    behaviours = linear_probes(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    assert np.abs(truth[:3]).min() > 1e-3
    for name in ("aa-hessian", "aa-ggn"):
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert _relative(found, truth) <= 1e-8, name
    for name in ("aa", "naive", "tracin"):
        found = attribute(version, tmp_path, task, behaviours, name).effects
        assert np.isfinite(found).all(), name


@pytest.fixture(scope="module")
def lora_lineage(tmp_path_factory):
    pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("lora")
    task, version = record_lora(root)
    return root, task, version


def test_a_lora_stage_is_attributed_by_every_estimator_as_replay_blames_it(lora_lineage):
    root, task, version = lora_lineage
    change = version.stage("vendor-lora").changes
    assert change.added and change.renamed  # peft added adapters and renamed the base weights
    behaviours = lora_behaviours(task)
    truth = attribute(version, root, task, behaviours, "replay").effects
    planted = version.stages.index(version.stage("vendor-lora"))
    assert int(np.argmax(truth[:, 0])) == planted and truth[planted, 0] > 0
    for name in ESTIMATORS:
        found = attribute(version, root, task, behaviours, name).effects
        assert found.shape == truth.shape and np.isfinite(found).all(), name
        assert (np.abs(found).max(axis=1) > 0).all(), name  # no stage silently zero
        # the planted stage is blamed first for the trigger habit, with replay's sign
        assert int(np.argmax(found[:, 0])) == planted and found[planted, 0] > 0, name
        assert np.corrcoef(found[:, 0], truth[:, 0])[0, 1] > 0.8, name


def test_streamed_and_whole_model_forms_agree_on_a_lora_lineage(lora_lineage):
    root, task, version = lora_lineage
    behaviours = lora_behaviours(task)
    for name in ("aa", "naive"):
        streamed = attribute(version, root, task, behaviours, name).effects
        whole = attribute(version, root, task, behaviours, name, stream=False).effects
        assert np.allclose(streamed, whole, rtol=1e-10, atol=1e-12), name


def test_what_is_not_handled_is_refused_in_one_line(lora_lineage):
    root, task, version = lora_lineage
    behaviours = lora_behaviours(task)
    with pytest.raises(EstimatorError, match="reverse mode does not handle") as info:
        attribute(version, root, task, behaviours, "aa-hessian", mode="reverse")
    assert "\n" not in str(info.value)
    with pytest.raises(EstimatorError, match="projection does not handle stage 'vendor-lora'"):
        attribute(version, root, task, behaviours, "aa-ggn", projection=64)
    # a merge (recomputes=): only replay recomputes the merged weight
    stages = list(version.stages)
    lora = version.stage("vendor-lora")
    weight = next(iter(lora.changes.renamed.values()))
    merged = lora.model_copy(update={"changes": lora.changes.model_copy(
        update={"recomputed": [weight]})})
    stages[stages.index(lora)] = merged
    merging = version.model_copy(update={"stages": stages})
    for name in ESTIMATORS:
        with pytest.raises(EstimatorError, match=f"merges adapters into '{weight}'") as info:
            attribute(merging, root, task, behaviours, name)
        assert "\n" not in str(info.value) and "use replay" in str(info.value)


def test_trained_parameters_are_named_as_in_the_final_model(lora_lineage):
    _, task, version = lora_lineage
    trained = version.trained_parameters()
    final = dict(task.adapt(task.build_model(), "vendor-lora").named_parameters())
    assert trained == set(final)  # base weights (trained before peft renamed them) included
    assert version.final_name(0, "fc1.weight") == "base_model.model.fc1.base_layer.weight"


def test_example_attribution_refuses_a_changing_parameter_set_in_one_line(lora_lineage):
    from auditor.estimators.datalevel import example_attribution

    root, task, version = lora_lineage
    with pytest.raises(EstimatorError, match="stage 'vendor-lora', which changes the parameter"):
        example_attribution(version, root, task, lora_behaviours(task), "sft")
