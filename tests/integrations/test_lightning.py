"""The PyTorch Lightning callback: every fit() call is a stage that replays bitwise on CPU
(accumulation, clipping over the optimizer's parameters, a per-step scheduler, dropout)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")

from auditor.integrations.lightning import AuditorCallback, RecordedData  # noqa: E402
from auditor.lineage.checkpoints import load_tensors  # noqa: E402
from auditor.lineage.counterfactual import load_model  # noqa: E402
from auditor.lineage.recorder import Recorder, load_lineage  # noqa: E402
from auditor.lineage.replay import run_stage  # noqa: E402
from tests.support.pltask import TASK, Examples, collate, task  # noqa: E402


def _fit(module, callback, data, tmp_path, **options):
    import lightning.pytorch as pl

    loader = torch.utils.data.DataLoader(data.dataset, batch_size=8, shuffle=True,
                                         collate_fn=data.collate)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=options.pop("max_steps", 5),
                         callbacks=[callback], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), **options)
    trainer.fit(module, loader)


def test_lightning_fit_calls_replay_bitwise(tmp_path):
    pl_task = task()
    torch.manual_seed(0)
    module = pl_task.build_model()
    recorder = Recorder(tmp_path / "run", module, model_name="mlp", version="pl", task=TASK)
    data = RecordedData(Examples(), collate)
    callback = AuditorCallback(recorder, data, stage="pretrain", kind="pretrain")
    _fit(module, callback, data, tmp_path, gradient_clip_val=0.3, accumulate_grad_batches=2,
         max_steps=4)
    callback.next_stage("fine-tune", kind="fine-tune")
    _fit(module, callback, data, tmp_path, max_steps=3)
    lineage = load_lineage(tmp_path / "run")
    first, second = lineage.stages
    assert first.micro_batches == [[8, 8]] * 4 and second.micro_batches is None
    assert first.optimizer.steps.max_grad_norm == [0.3] * 4
    assert first.optimizer.clip_over == "optimizer"
    assert first.optimizer.steps.lr[1] != first.optimizer.steps.lr[2]  # the step scheduler
    for stage in lineage.stages:
        model = load_model(pl_task, lineage, tmp_path / "run", stage.theta_start)
        run_stage(model, pl_task, stage)
        expected = load_tensors(stage.theta_end, tmp_path / "run")
        assert all(torch.equal(t, expected[n]) for n, t in model.state_dict().items()), stage.id


def test_16_mixed_with_a_loss_scaler_records_its_skips_and_replays_bitwise(tmp_path):
    """Lightning's 16-mixed trains under fp16 autocast and a GradScaler (the plugin is given
    explicitly: on the CPU Lightning would switch to bf16-mixed). The initial scale overflows
    fp16, so the scaler skips the first steps; replay repeats them with a real GradScaler."""
    from lightning.pytorch.plugins import MixedPrecision

    pl_task = task()
    torch.manual_seed(0)
    module = pl_task.build_model()
    recorder = Recorder(tmp_path / "run", module, model_name="mlp", version="pl", task=TASK)
    data = RecordedData(Examples(), collate)
    callback = AuditorCallback(recorder, data, stage="pretrain", kind="pretrain")
    scaler = torch.amp.GradScaler("cpu", init_scale=3 * 2.0**20, growth_interval=2)
    _fit(module, callback, data, tmp_path, max_steps=8, gradient_clip_val=0.3,
         plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    lineage = load_lineage(tmp_path / "run")
    stage = lineage.stages[0]
    assert stage.autocast == "float16" and stage.optimizer.clip_over == "optimizer"
    assert stage.loss_scaler.scale == 3 * 2.0**20 and stage.loss_scaler.growth_interval == 2
    skipped = stage.loss_scaler.skipped
    assert skipped and skipped[0].before_step == 0 and skipped[0].max_grad_norm == 0.3
    assert stage.steps + len(skipped) == 8
    model = load_model(pl_task, lineage, tmp_path / "run", stage.theta_start)
    run_stage(model, pl_task, stage)
    expected = load_tensors(stage.theta_end, tmp_path / "run")
    assert all(torch.equal(t, expected[n]) for n, t in model.state_dict().items())
