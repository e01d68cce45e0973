"""Leave-stage-out retraining and remediation produce the real counterfactual model."""

from __future__ import annotations

import torch

from auditor.lineage.checkpoints import load_tensors
from auditor.lineage.counterfactual import load_model, run_without_stage
from auditor.lineage.recorder import load_lineage
from auditor.lineage.remediate import drop_stage
from tests.support.recorded import record_sgd as _record_sgd


def test_dropping_the_last_stage_gives_its_start(tmp_path):
    task, rec = _record_sgd(tmp_path)
    version = rec.lineage
    model = run_without_stage(version, tmp_path, task, 2)
    start = load_tensors(version.stages[2].theta_start, tmp_path)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


def test_drop_middle_stage_records_replayable_version(tmp_path):
    task, rec = _record_sgd(tmp_path / "v1")
    version = rec.lineage
    expected = run_without_stage(version, tmp_path / "v1", task, 1)
    new = drop_stage(version, tmp_path / "v1", task, "finetune", tmp_path / "v1r", "v1r")
    assert [s.id for s in new.stages] == ["pretrain", "polish"] and new.parent == "v1"
    again = load_lineage(tmp_path / "v1r")
    final = load_model(task, again, tmp_path / "v1r", again.stages[-1].theta_end)
    for name, tensor in final.state_dict().items():
        assert torch.equal(tensor, expected.state_dict()[name])
    differs = any(not torch.equal(a, b) for a, b in zip(
        final.state_dict().values(),
        load_model(task, version, tmp_path / "v1", version.stages[-1].theta_end)
        .state_dict().values()))
    assert differs
