"""The recorder logs enough to replay every stage bitwise on CPU."""

from __future__ import annotations

import torch
from tinytask import TinyTask

from auditor import Recorder
from auditor.lineage.checkpoints import load_model_state, load_tensors
from auditor.lineage.models import DatasetRef
from auditor.lineage.recorder import load_lineage
from auditor.lineage.replay import run_stage

DATA = [DatasetRef(name="tiny", digest="0" * 64, records=64, tags=["synthetic"])]


def _batches(steps: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randperm(64, generator=gen)[:8] for _ in range(steps)]


def _train(rec, task, model, opt, sched, steps, seed, clip=None):
    for ids in _batches(steps, seed):
        rec.batch(ids)
        loss = task.loss(model, task.batch("", ids))
        opt.zero_grad()
        loss.backward()
        if clip:
            rec.clip_grad_norm_(clip)
        opt.step()
        if sched:
            sched.step()


def _record_sgd(tmp_path):
    task = TinyTask()
    torch.manual_seed(1)
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny", version="v1",
                   task="tinytask:tiny_task", seed=7)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    with rec.stage("pretrain", kind="pretrain", optimizer=opt, datasets=DATA):
        _train(rec, task, model, opt, sched, 7, 0)
    with rec.stage("finetune", kind="fine-tune", optimizer=opt, datasets=DATA):  # carry
        _train(rec, task, model, opt, sched, 5, 1)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5, nesterov=True)
    with rec.stage("polish", kind="alignment", optimizer=opt2):  # reset
        _train(rec, task, model, opt2, None, 4, 2)
    return task, rec


def _record_adamw(tmp_path):
    task = TinyTask(dropout=0.3)
    torch.manual_seed(2)
    model = task.build_model()
    model[0].bias.requires_grad_(False)  # a frozen parameter
    decay = [model[0].weight, model[3].weight]
    no_decay = [model[0].bias, model[3].bias]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0, "lr": 3e-3}], lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)
    rec = Recorder(tmp_path, model, model_name="tiny", version="v2", task="tinytask:tiny_task")
    with rec.stage("pretrain", kind="pretrain", optimizer=opt):
        _train(rec, task, model, opt, sched, 6, 3, clip=0.5)
    with rec.stage("sft", kind="fine-tune", optimizer=opt):
        _train(rec, task, model, opt, sched, 6, 4, clip=0.5)
    return task, rec


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
    task, rec = _record_sgd(tmp_path)
    lineage = rec.lineage
    assert [s.convention for s in lineage.stages] == ["reset", "carry", "reset"]
    assert lineage.stages[0].optimizer.steps.lr[:4] == [[0.1]] * 3 + [[0.05]]
    assert lineage.stages[2].optimizer.nesterov
    _assert_replays_bitwise(tmp_path, task)


def test_adamw_groups_clipping_frozen_replays_bitwise(tmp_path):
    task, rec = _record_adamw(tmp_path)
    stage = rec.lineage.stages[1]
    assert stage.convention == "carry"
    assert stage.optimizer.kind == "adamw"
    assert stage.optimizer.groups[1].frozen == ["0.bias"]
    assert stage.optimizer.steps.weight_decay[0] == [0.05, 0.0]
    assert stage.optimizer.steps.adam_step[0] == [7, 7]
    assert all(v == 0.5 for v in stage.optimizer.steps.max_grad_norm)
    _assert_replays_bitwise(tmp_path, task)


def test_lineage_json_round_trip(tmp_path):
    _, rec = _record_sgd(tmp_path)
    again = load_lineage(tmp_path / "lineage.json")
    assert again == rec.lineage
    assert again.model_dump_json() == rec.lineage.model_dump_json()
