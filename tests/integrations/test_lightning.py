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


def test_16_mixed_with_a_loss_scaler_is_refused_before_any_step_in_one_line(tmp_path):
    """Lightning's 16-mixed trains under a GradScaler (given explicitly here: on the CPU
    Lightning would switch to bf16-mixed)."""
    from lightning.pytorch.plugins import MixedPrecision

    from auditor.errors import LineageError

    pl_task = task()
    torch.manual_seed(0)
    module = pl_task.build_model()
    before = {n: t.clone() for n, t in module.state_dict().items()}
    recorder = Recorder(tmp_path / "run", module, model_name="mlp", version="pl", task=TASK)
    data = RecordedData(Examples(), collate)
    callback = AuditorCallback(recorder, data, stage="pretrain", kind="pretrain")
    with pytest.raises(LineageError, match="loss scaler") as info:
        _fit(module, callback, data, tmp_path, plugins=[MixedPrecision("16-mixed", "cpu")])
    assert "\n" not in str(info.value) and "bf16-mixed" in str(info.value)
    assert all(torch.equal(before[n], t) for n, t in module.state_dict().items())
