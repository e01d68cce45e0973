"""The recorder logs enough to replay every stage bitwise on CPU."""

from __future__ import annotations

import torch

from auditor.lineage.checkpoints import load_model_state, load_tensors
from auditor.lineage.recorder import load_lineage
from auditor.lineage.replay import run_stage
from tests.support.recorded import record_adamw, record_sgd


def _assert_replays_bitwise(tmp_path, task):
    lineage = load_lineage(tmp_path)
    for stage in lineage.stages:
        model = task.build_model()
        load_model_state(model, load_tensors(stage.theta_start, tmp_path))
        opt_in = load_tensors(stage.optimizer_start, tmp_path) if stage.optimizer_start else None
        opt_out = run_stage(model, task, stage, opt_in)
        expected = load_tensors(stage.theta_end, tmp_path)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, expected[name]), (stage.id, name)
        expected_opt = load_tensors(stage.optimizer_end, tmp_path)
        assert set(opt_out) == set(expected_opt)
        for key, tensor in opt_out.items():
            assert torch.equal(tensor, expected_opt[key]), (stage.id, key)


def test_sgd_momentum_weight_decay_scheduler_replays_bitwise(tmp_path):
    task, rec = record_sgd(tmp_path)
    lineage = rec.lineage
    assert [s.convention for s in lineage.stages] == ["reset", "carry", "reset"]
    assert lineage.stages[0].optimizer.steps.lr[:4] == [[0.1]] * 3 + [[0.05]]
    assert lineage.stages[2].optimizer.nesterov
    _assert_replays_bitwise(tmp_path, task)


def test_adamw_groups_clipping_frozen_replays_bitwise(tmp_path):
    task, rec = record_adamw(tmp_path)
    stage = rec.lineage.stages[1]
    assert stage.convention == "carry"
    assert stage.optimizer.kind == "adamw"
    assert stage.optimizer.groups[1].frozen == ["0.bias"]
    assert stage.optimizer.steps.weight_decay[0] == [0.05, 0.0]
    assert stage.optimizer.steps.adam_step[0] == [7, 7]
    assert all(v == 0.5 for v in stage.optimizer.steps.max_grad_norm)
    _assert_replays_bitwise(tmp_path, task)


def test_lineage_json_round_trip(tmp_path):
    _, rec = record_sgd(tmp_path)
    again = load_lineage(tmp_path / "lineage.json")
    assert again == rec.lineage
    assert again.model_dump_json() == rec.lineage.model_dump_json()


def test_a_gradscaler_loop_with_skipped_steps_records_and_replays_bitwise(tmp_path, caplog):
    """torch.amp.GradScaler skips ``optimizer.step()`` when the scaled gradients hold Inf/NaN:
    those batches changed nothing, so the lineage keeps the steps taken and replays bitwise (a
    power-of-two loss scale is exact in float32)."""
    import logging

    from auditor import Recorder
    from tests.support.recorded import DATA, _batches, train_amp
    from tests.support.tinytask import TinyTask

    task = TinyTask()
    torch.manual_seed(3)
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny", version="amp", task="tests.support.tinytask:tiny_task",
                   seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    poisoned = {2, 6}  # these batches overflow: their step is skipped
    caplog.set_level(logging.INFO, logger="auditor.lineage.recorder")
    with rec.stage("sft", kind="fine-tune", optimizer=opt, datasets=DATA):
        # the last batch is skipped too
        train_amp(rec, task, model, opt, scaler, _batches(7, 0), poisoned, clip=10.0)
    stage = rec.lineage.stages[0]
    assert stage.steps == 5 and len(stage.batch_ids) == 5
    assert stage.optimizer.steps.grad_norm is not None
    assert all(n == n and n != float("inf") for n in stage.optimizer.steps.grad_norm)
    assert "2 batch(es) had their optimizer step skipped" in caplog.text
    assert "diverging" not in caplog.text
    _assert_replays_bitwise(tmp_path, task)
