"""Stages that change the parameter set: a LoRA stage (real peft) added mid-run records, replays
bitwise, is left out by leave-stage-out replay and attributed; an undeclared change fails when
the stage starts, in one line, before any training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from auditor.errors import LineageError  # noqa: E402
from auditor.lineage.checkpoints import load_tensors  # noqa: E402
from auditor.lineage.counterfactual import load_model, run_without_stage  # noqa: E402
from auditor.lineage.recorder import Recorder, load_lineage  # noqa: E402
from auditor.lineage.replay import run_stage  # noqa: E402
from tests.support.lmrecord import record_with_lora  # noqa: E402


def _equal_to(model, ref, root):
    expected = load_tensors(ref, root)
    state = model.state_dict()
    assert set(state) == set(expected)
    return all(torch.equal(state[n], expected[n]) for n in state)


def test_lora_stage_records_its_change_and_every_stage_replays_bitwise(tmp_path):
    task, recorder, peft_model = record_with_lora(tmp_path)
    lineage = load_lineage(tmp_path)
    lora = lineage.stage("vendor-lora")
    change = lora.changes
    assert change is not None and change.added and all("lora_" in n for n in change.added)
    assert change.renamed["transformer.h.0.attn.c_attn.weight"] == \
        "base_model.model.transformer.h.0.attn.c_attn.base_layer.weight"
    assert not change.removed and not change.recomputed
    assert lineage.stage("polish").changes is None
    # the LoRA stage froze the base model: only adapters are trained, tied weights count once
    assert lineage.parameters == sum(p.numel() for p in peft_model.parameters()
                                     if p.requires_grad)
    for stage in lineage.stages:
        model = load_model(task, lineage, tmp_path, stage.theta_start)
        opt_in = load_tensors(stage.optimizer_start, tmp_path) if stage.optimizer_start else None
        run_stage(model, task, stage, opt_in)
        assert _equal_to(model, stage.theta_end, tmp_path), stage.id


def test_leaving_out_stages_around_an_adapter_stage(tmp_path):
    task, _, _ = record_with_lora(tmp_path)
    lineage = load_lineage(tmp_path)
    final = load_model(task, lineage, tmp_path, lineage.stages[-1].theta_end)
    # without sft: the LoRA stage gets its adapters from their recorded initialisation
    without_sft = run_without_stage(lineage, tmp_path, task, 1)
    assert set(without_sft.state_dict()) == set(final.state_dict())
    initial = load_tensors(lineage.stage("vendor-lora").theta_start, tmp_path)
    name = next(n for n in initial if "lora_A" in n)
    assert not torch.equal(without_sft.state_dict()[name], final.state_dict()[name])
    # without the LoRA stage: polish starts from the adapters at their initial values (B = 0,
    # the base model as sft left it), so the LoRA stage's own effect includes its adapters
    without_lora = run_without_stage(lineage, tmp_path, task, 2)
    b_name = name.replace("lora_A", "lora_B")
    assert not bool(initial[b_name].any())
    expected = load_model(task, lineage, tmp_path, lineage.stage("vendor-lora").theta_start)
    run_stage(expected, task, lineage.stage("polish"))
    assert all(torch.equal(a, b) for a, b in zip(expected.state_dict().values(),
                                                 without_lora.state_dict().values()))
    assert not torch.equal(final.state_dict()[b_name], without_lora.state_dict()[b_name])
    # the same run twice is the same model (replay is deterministic)
    again = run_without_stage(lineage, tmp_path, task, 2)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 without_lora.state_dict().values()))


def test_an_undeclared_model_change_fails_at_stage_start_in_one_line(tmp_path):
    from auditor.demo import charlm

    task = charlm.task()
    torch.manual_seed(0)
    model = task.build_model()
    recorder = Recorder(tmp_path, model, model_name="charlm", version="x", task=charlm.TASK)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with recorder.stage("pretrain", kind="pretrain", optimizer=opt):
        recorder.batch([0, 1])
        task.loss(model, task.batch("pretrain", [0, 1])).backward()
        opt.step()
    peft_model = task.adapt(model, "vendor-lora")
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    trained = []
    with pytest.raises(LineageError) as info:  # adapters added but not declared
        with recorder.stage("vendor-lora", kind="fine-tune", optimizer=opt, model=peft_model):
            trained.append(1)
    message = str(info.value)
    assert "\n" not in message and "lora_" in message and "adds=" in message
    assert not trained  # failed before the stage's body ran
    with torch.no_grad():  # an edit between stages
        peft_model.base_model.model.transformer.wpe.weight.add_(1.0)
    with pytest.raises(LineageError, match="wpe.weight' was changed outside a recorded stage"):
        with recorder.stage("vendor-lora", kind="fine-tune", optimizer=opt, model=peft_model,
                            adds=["*lora_*"]):
            trained.append(1)
    assert not trained


def test_a_declared_change_that_hides_swapped_weights_is_refused_on_add(tmp_path):
    from auditor import api
    from auditor.lineage.checkpoints import save_tensors
    from auditor.lineage.io import write_lineage_json
    from auditor.lineage.recorder import LINEAGE_FILE

    record_with_lora(tmp_path, polish=False)
    lineage = load_lineage(tmp_path)
    api.record_lineage(tmp_path, db=tmp_path / "ok.duckdb")  # the honest lineage is accepted
    start = load_tensors(lineage.stage("vendor-lora").theta_start, tmp_path)
    name = "base_model.model.transformer.wpe.weight"
    start[name] = start[name] + 1.0  # a swapped weight hidden behind the LoRA declaration
    forged = save_tensors(start, tmp_path / "checkpoints", tmp_path, prefix="model")
    stages = list(lineage.stages)
    stages[-1] = stages[-1].model_copy(update={"theta_start": forged})
    write_lineage_json(lineage.model_copy(update={"stages": stages}), tmp_path / LINEAGE_FILE)
    with pytest.raises(LineageError, match="wpe.weight': its value differs"):
        api.record_lineage(tmp_path, db=tmp_path / "forged.duckdb")


def test_the_replay_estimator_attributes_a_lineage_with_a_lora_stage(tmp_path):
    from auditor.demo import charlm
    from auditor.estimators import attribute

    task, _, _ = record_with_lora(tmp_path)
    lineage = load_lineage(tmp_path)
    behaviours = charlm.behaviours()
    found = attribute(lineage, tmp_path, task, behaviours, "replay").effects
    assert found.shape == (4, len(behaviours)) and bool(torch.isfinite(torch.tensor(found)).all())
    final = load_model(task, lineage, tmp_path, lineage.stages[-1].theta_end)
    without = run_without_stage(lineage, tmp_path, task, 2)  # the LoRA stage left out
    for q, behaviour in enumerate(behaviours):
        expected = float(behaviour.evaluate(final)[0].detach()) - float(
            behaviour.evaluate(without)[0].detach())
        assert found[2, q] == pytest.approx(expected, abs=1e-6)
    # aa works in the union of the parameters: the LoRA stage's own effect includes its
    # adapters (docs/maths.md#changing-parameter-sets; tests/estimators/test_parameter_changes)
    first_order = attribute(lineage, tmp_path, task, behaviours, "aa").effects
    assert bool(np.isfinite(first_order).all()) and bool((first_order != 0).any(axis=1).all())


def test_aa_ggn_splits_a_model_output_at_its_logits(tmp_path):
    from auditor.demo import charlm
    from auditor.estimators import attribute

    task, _, _ = record_with_lora(tmp_path, lora=False)
    lineage = load_lineage(tmp_path)
    behaviours = charlm.behaviours()
    ggn = attribute(lineage, tmp_path, task, behaviours, "aa-ggn").effects
    assert bool(torch.isfinite(torch.tensor(ggn)).all()) and float(abs(ggn).sum()) > 0
    exact = attribute(lineage, tmp_path, task, behaviours, "replay").effects
    assert ggn[1] == pytest.approx(exact[1], rel=0.5, abs=0.02)  # the last stage, first order
