"""The Hugging Face Trainer callback: every train() call is a stage that replays bitwise on CPU
(gradient accumulation, clipping, a warm-up schedule, the Trainer's fused AdamW, dropout), also
when a LoRA adapter is added between two train() calls; an undeclared change fails in
on_train_begin."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from auditor.errors import LineageError  # noqa: E402
from auditor.integrations.transformers import AuditorCallback, RecordedData  # noqa: E402
from auditor.lineage.checkpoints import load_tensors  # noqa: E402
from auditor.lineage.counterfactual import load_model  # noqa: E402
from auditor.lineage.recorder import Recorder, load_lineage  # noqa: E402
from auditor.lineage.replay import run_stage  # noqa: E402
from tests.support.hftask import TASK, arguments, task  # noqa: E402


def _train(model, args, data, callback):
    from transformers import Trainer

    trainer = Trainer(model=model, args=args, train_dataset=data.dataset,
                      data_collator=data.collate, callbacks=[callback])
    trainer.train()
    return trainer


def _record(tmp_path):
    hf = task()
    torch.manual_seed(0)
    model = hf.build_model()
    recorder = Recorder(tmp_path / "run", model, model_name="charlm", version="hf", task=TASK)
    data = RecordedData(hf.dataset("pretrain"), None)
    from transformers import default_data_collator

    data = RecordedData(hf.dataset("pretrain"), default_data_collator)
    callback = AuditorCallback(recorder, data, stage="pretrain", kind="pretrain")
    _train(model, arguments(tmp_path / "out"), data, callback)
    sft = RecordedData(hf.dataset("sft"), default_data_collator)
    callback = AuditorCallback(recorder, sft, stage="sft", kind="fine-tune")
    _train(model, arguments(tmp_path / "out", gradient_accumulation_steps=3, max_steps=3,
                            lr_scheduler_type="cosine"), sft, callback)
    peft_model = hf.adapt(model, "vendor-lora")
    vendor = RecordedData(hf.dataset("vendor-lora"), default_data_collator)
    callback = AuditorCallback(recorder, vendor, stage="vendor-lora", kind="fine-tune",
                               adds=["*lora_*"])
    _train(peft_model, arguments(tmp_path / "out", learning_rate=1e-2), vendor, callback)
    return hf, load_lineage(tmp_path / "run")


def test_trainer_runs_replay_bitwise_with_accumulation_clipping_schedule_and_lora(tmp_path):
    hf, lineage = _record(tmp_path)
    root = tmp_path / "run"
    assert [s.id for s in lineage.stages] == ["pretrain", "sft", "vendor-lora"]
    pretrain, sft, lora = lineage.stages
    assert pretrain.micro_batches == [[4, 4]] * 4 and sft.micro_batches == [[4, 4, 4]] * 3
    assert pretrain.optimizer.steps.max_grad_norm == [0.5] * 4
    assert pretrain.optimizer.steps.lr[0] != pretrain.optimizer.steps.lr[1]  # warm-up
    assert len(pretrain.optimizer.groups) == 2  # the Trainer's decay / no-decay groups
    assert lora.changes is not None and lora.changes.added
    for stage in lineage.stages:
        model = load_model(hf, lineage, root, stage.theta_start)
        run_stage(model, hf, stage)
        expected = load_tensors(stage.theta_end, root)
        state = model.state_dict()
        assert set(state) == set(expected)
        assert all(torch.equal(state[n], expected[n]) for n in state), stage.id


def test_an_undeclared_adapter_fails_in_on_train_begin(tmp_path):
    from transformers import default_data_collator

    hf = task()
    torch.manual_seed(0)
    model = hf.build_model()
    recorder = Recorder(tmp_path / "run", model, model_name="charlm", version="x", task=TASK)
    data = RecordedData(hf.dataset("pretrain"), default_data_collator)
    _train(model, arguments(tmp_path / "out", max_steps=1),
           data, AuditorCallback(recorder, data, stage="pretrain", kind="pretrain"))
    peft_model = hf.adapt(model, "vendor-lora")
    before = {n: t.clone() for n, t in peft_model.state_dict().items()}
    with pytest.raises(LineageError, match="appeared without being declared") as info:
        _train(peft_model, arguments(tmp_path / "out"), data,
               AuditorCallback(recorder, data, stage="vendor-lora", kind="fine-tune"))
    assert "\n" not in str(info.value)
    after = peft_model.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)  # no step was taken


def test_bf16_mixed_precision_is_recorded_and_replays_bitwise(tmp_path):
    from transformers import default_data_collator

    hf = task()
    torch.manual_seed(0)
    model = hf.build_model()
    recorder = Recorder(tmp_path / "run", model, model_name="charlm", version="bf", task=TASK)
    data = RecordedData(hf.dataset("pretrain"), default_data_collator)
    _train(model, arguments(tmp_path / "out", bf16=True, max_steps=2), data,
           AuditorCallback(recorder, data, stage="pretrain", kind="pretrain"))
    lineage = load_lineage(tmp_path / "run")
    stage = lineage.stages[0]
    assert stage.autocast == "bfloat16"
    replayed = load_model(hf, lineage, tmp_path / "run", stage.theta_start)
    run_stage(replayed, hf, stage)
    expected = load_tensors(stage.theta_end, tmp_path / "run")
    assert all(torch.equal(t, expected[n]) for n, t in replayed.state_dict().items())


def test_fp16_on_the_cpu_is_recorded_as_the_fp32_accelerate_runs_and_replays_bitwise(tmp_path):
    """accelerate ignores fp16 on the CPU (no autocast, no loss scaler): the stage records no
    autocast, so replay runs what training ran, bit for bit."""
    from transformers import default_data_collator

    hf = task()
    torch.manual_seed(0)
    model = hf.build_model()
    recorder = Recorder(tmp_path / "run", model, model_name="charlm", version="fp", task=TASK)
    data = RecordedData(hf.dataset("pretrain"), default_data_collator)
    _train(model, arguments(tmp_path / "out", fp16=True, max_steps=2), data,
           AuditorCallback(recorder, data, stage="pretrain", kind="pretrain"))
    lineage = load_lineage(tmp_path / "run")
    stage = lineage.stages[0]
    assert stage.autocast is None
    replayed = load_model(hf, lineage, tmp_path / "run", stage.theta_start)
    run_stage(replayed, hf, stage)
    expected = load_tensors(stage.theta_end, tmp_path / "run")
    assert all(torch.equal(t, expected[n]) for n, t in replayed.state_dict().items())


def test_fp16_with_a_loss_scaler_records_its_skips_and_replays_bitwise(tmp_path):
    """On an accelerator, fp16 trains under autocast with accelerate's GradScaler. The CPU build
    has no such path of its own, so the Trainer's accelerator is given what it builds there: a
    real GradScaler and native amp (fp16 autocast of the model's forward). The initial scale
    overflows fp16, so the scaler skips the first steps (the Trainer's fused AdamW is called
    with the Inf flag and changes nothing)."""
    from transformers import Trainer, default_data_collator

    hf = task()
    torch.manual_seed(0)
    model = hf.build_model()
    recorder = Recorder(tmp_path / "run", model, model_name="charlm", version="fp", task=TASK)
    data = RecordedData(hf.dataset("pretrain"), default_data_collator)
    trainer = Trainer(model=model, args=arguments(tmp_path / "out", fp16=True, max_steps=5),
                      train_dataset=data.dataset, data_collator=data.collate,
                      callbacks=[AuditorCallback(recorder, data, stage="pretrain",
                                                 kind="pretrain")])
    assert trainer.accelerator.mixed_precision == "fp16" and trainer.accelerator.scaler is None
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=3 * 2.0**18)
    trainer.accelerator.native_amp = True
    trainer.train()
    lineage = load_lineage(tmp_path / "run")
    stage = lineage.stages[0]
    assert stage.autocast == "float16"
    assert stage.loss_scaler.scale == 3 * 2.0**18
    skipped = stage.loss_scaler.skipped
    assert skipped and skipped[0].before_step == 0 and stage.steps + len(skipped) == 5
    assert stage.optimizer.fused  # the Trainer's fused AdamW, called with the Inf flag
    assert stage.optimizer.steps.adam_step[0] == [1, 1]  # skipped steps moved no Adam state
    replayed = load_model(hf, lineage, tmp_path / "run", stage.theta_start)
    run_stage(replayed, hf, stage)
    expected = load_tensors(stage.theta_end, tmp_path / "run")
    assert all(torch.equal(t, expected[n]) for n, t in replayed.state_dict().items())
