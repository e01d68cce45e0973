"""fp16 autocast with a real torch.amp.GradScaler in a hand-written loop: the scaler's start state
and the batches it skipped are recorded, and replay (a real GradScaler from that state) reaches
the recorded end checkpoints bitwise on CPU; hostile scaler fields are refused in one line."""

from __future__ import annotations

import json

import pytest
import torch

from auditor import Recorder
from auditor.errors import LineageError
from auditor.lineage.checkpoints import load_model_state, load_tensors
from auditor.lineage.recorder import load_lineage
from auditor.lineage.replay import run_stage
from tests.support.recorded import DATA, _batches
from tests.support.tinytask import TinyTask

TASK = "tests.support.tinytask:tiny_task"


def _fp16_loop(rec, task, model, opt, scaler, batches, clip=None, accumulate=1):
    for ids in batches:
        rec.batch(ids, micro_batches=[len(ids) // accumulate] * accumulate)
        opt.zero_grad()
        for part in ids.chunk(accumulate):
            with torch.autocast("cpu", dtype=torch.float16):
                loss = task.loss(model, task.batch("", part)) / accumulate
            scaler.scale(loss).backward()
        if clip:
            scaler.unscale_(opt)
            rec.clip_grad_norm_(clip)
        scaler.step(opt)
        scaler.update()


def _assert_replays_bitwise(root, task):
    lineage = load_lineage(root)
    for stage in lineage.stages:
        model = task.build_model()
        load_model_state(model, load_tensors(stage.theta_start, root))
        opt_in = load_tensors(stage.optimizer_start, root) if stage.optimizer_start else None
        opt_out = run_stage(model, task, stage, opt_in)
        expected = load_tensors(stage.theta_end, root)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, expected[name]), (stage.id, name)
        expected_opt = load_tensors(stage.optimizer_end, root)
        assert all(torch.equal(t, expected_opt[k]) for k, t in opt_out.items()), stage.id
    return lineage


def _record(tmp_path, optimizer, init_scale=2.0**24, clip=1.0):
    task = TinyTask(dropout=0.2)
    torch.manual_seed(4)
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny", version="fp16", task=TASK, seed=3)
    opt = optimizer(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=3)
    with rec.stage("pretrain", kind="pretrain", optimizer=opt, datasets=DATA,
                   autocast="float16", scaler=scaler):
        _fp16_loop(rec, task, model, opt, scaler, _batches(12, 0), clip=clip)
    scale_between = scaler.get_scale()
    with rec.stage("sft", kind="fine-tune", optimizer=opt, autocast="float16", scaler=scaler):
        _fp16_loop(rec, task, model, opt, scaler, _batches(6, 1), accumulate=2)
    return task, rec, scale_between


def _replays_bitwise_without_the_scaler(root, task, stage) -> bool:
    model = task.build_model()
    load_model_state(model, load_tensors(stage.theta_start, root))
    run_stage(model, task, stage.model_copy(update={"loss_scaler": None}))
    expected = load_tensors(stage.theta_end, root)
    return all(torch.equal(t, expected[n]) for n, t in model.state_dict().items())


def test_fp16_autocast_with_a_grad_scaler_that_skips_steps_replays_bitwise(tmp_path):
    # a scale that is not a power of two rounds the fp16 gradients differently: replay must
    # scale exactly as training did
    task, rec, scale_between = _record(
        tmp_path, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), init_scale=3 * 2.0**22)
    pretrain, sft = rec.lineage.stages
    scaler = pretrain.loss_scaler
    assert scaler.scale == 3 * 2.0**22 and scaler.growth_interval == 3
    assert scaler.growth_factor == 2.0 and scaler.backoff_factor == 0.5
    # 2**24 overflows fp16 gradients: the first batches are skipped (the scale backs off)
    assert [b.before_step for b in scaler.skipped][:1] == [0]
    assert pretrain.steps + len(scaler.skipped) == 12
    assert all(b.max_grad_norm == 1.0 for b in scaler.skipped)
    assert sft.loss_scaler.scale == scale_between  # the carried scaler's state at sft's start
    assert sft.micro_batches == [[4, 4]] * sft.steps
    lineage = _assert_replays_bitwise(tmp_path, task)
    assert lineage == rec.lineage  # the JSON round trip keeps every field
    assert not _replays_bitwise_without_the_scaler(tmp_path, task, pretrain)


def test_a_fused_adamw_under_a_grad_scaler_logs_only_the_steps_it_took(tmp_path):
    """A fused optimizer is called even for an overflowing batch (the GradScaler hands it the
    Inf flag and it changes nothing): that batch is logged as skipped, not as a step."""
    task, rec, _ = _record(tmp_path, lambda p: torch.optim.AdamW(p, lr=1e-2, fused=True),
                           clip=None)
    pretrain = rec.lineage.stages[0]
    assert pretrain.optimizer.fused
    assert pretrain.loss_scaler.skipped and pretrain.loss_scaler.skipped[0].before_step == 0
    assert pretrain.optimizer.steps.adam_step[0] == [1]  # the first step taken is Adam's first
    _assert_replays_bitwise(tmp_path, task)


def test_a_scaler_auditor_cannot_replay_is_refused_when_the_stage_starts(tmp_path):
    task = TinyTask()
    model = task.build_model()
    rec = Recorder(tmp_path, model, model_name="tiny", version="x", task=TASK)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LineageError, match="must be a torch.amp.GradScaler") as info:
        with rec.stage("pretrain", kind="pretrain", optimizer=opt, scaler=object()):
            raise AssertionError("the stage must not start")
    assert "\n" not in str(info.value)
    hostile = torch.amp.GradScaler("cpu", init_scale=float("inf"))
    with pytest.raises(LineageError, match="GradScaler's scale") as info:
        with rec.stage("pretrain", kind="pretrain", optimizer=opt, scaler=hostile):
            raise AssertionError("the stage must not start")
    assert "\n" not in str(info.value)
    disabled = torch.amp.GradScaler("cpu", enabled=False)  # a disabled scaler scales nothing
    with rec.stage("pretrain", kind="pretrain", optimizer=opt, scaler=disabled):
        rec.batch([0, 1])
        task.loss(model, task.batch("", [0, 1])).backward()
        opt.step()
    assert rec.lineage.stages[0].loss_scaler is None


@pytest.fixture(scope="module")
def lineage_json(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fp16")
    _record(root, lambda p: torch.optim.SGD(p, lr=0.05), init_scale=2.0**10)
    return json.loads((root / "lineage.json").read_text())


@pytest.mark.parametrize("field, value, message", [
    ("scale", -1.0, "greater than 0"),
    ("scale", 1e300, "less than or equal to"),
    ("scale", 0.1, "float32 value"),
    ("scale", "Infinity", "finite"),
    ("growth_factor", 0.5, "greater than or equal to 1"),
    ("backoff_factor", 0.0, "greater than 0"),
    ("backoff_factor", "NaN", "finite"),
    ("growth_interval", 0, "greater than or equal to 1"),
    ("growth_tracker", 5, "below growth_interval"),
    ("skipped", [{"before_step": 99, "ids": [1]}], "after the stage's"),
    ("skipped", [{"before_step": 0, "ids": [1, 2], "micro_batches": [1]}], "split its ids"),
    ("skipped", [{"before_step": 0, "ids": [-1]}], "greater than or equal to 0"),
    ("skipped", [{"before_step": 1, "ids": [1]}, {"before_step": 0, "ids": [2]}],
     "training order"),
])
def test_hostile_loss_scaler_fields_are_refused_in_one_line(tmp_path, lineage_json, field,
                                                             value, message):
    data = json.loads(json.dumps(lineage_json))
    scaler = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5,
              "growth_interval": 3, "growth_tracker": 0}
    scaler[field] = value
    data["stages"][0]["loss_scaler"] = scaler
    # JSON's non-finite literals, as a hostile file would hold them
    text = json.dumps(data).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
    (tmp_path / "lineage.json").write_text(text)
    with pytest.raises(LineageError, match=message) as info:
        load_lineage(tmp_path)
    assert "\n" not in str(info.value)


def test_a_stage_removed_before_an_fp16_stage_is_replayed_and_the_result_replays_bitwise(
        tmp_path):
    """Counterfactual replay (remediation drops the first stage): the fp16 stage is re-run from
    another start under a real GradScaler from its recorded state; the remediated lineage then
    replays bitwise to the checkpoints remediation wrote."""
    from auditor.lineage.remediate import drop_stage

    task, rec, _ = _record(tmp_path / "run", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                           init_scale=3 * 2.0**22)
    new = drop_stage(rec.lineage, tmp_path / "run", task, "pretrain", tmp_path / "fixed",
                     "fp16-fixed")
    assert new.stages[-1].loss_scaler == rec.lineage.stages[1].loss_scaler
    _assert_replays_bitwise(tmp_path / "fixed", task)
