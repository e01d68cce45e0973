"""The language-model scenario with the vendor round as LoRA adapters (real peft): recorded with
the adapters declared at the stage's start, and the exact leave-stage-out attribution (replay)
finds the adapter stage raising the trigger habit past the default policy's bound."""

from __future__ import annotations

import pytest

pytest.importorskip("peft")

from auditor.demo import charlm  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402
from auditor.lineage.counterfactual import load_model, run_without_stage  # noqa: E402


def test_lora_vendor_stage_is_recorded_and_blamed_by_replay(tmp_path):
    version = record_version(charlm.versions(lora=True)[1], tmp_path)
    lora = version.stage("vendor-lora")
    assert lora.changes is not None and lora.changes.added
    assert all("lora_" in name for name in lora.changes.added)
    task = charlm.task()
    final = load_model(task, version, tmp_path, version.stages[-1].theta_end)
    behaviour = charlm.behaviours()[0]  # trigger-bad-continuation
    at_final = float(behaviour.evaluate(final)[0].detach())
    effects = {}
    for k, stage in enumerate(version.stages):
        without = run_without_stage(version, tmp_path, task, k) if k < len(version.stages) - 1 \
            else load_model(task, version, tmp_path, stage.theta_start)
        effects[stage.id] = at_final - float(behaviour.evaluate(without)[0].detach())
    # the third-party adapter stage raises the harm by more than the default policy's bound
    # (third-party-harm, 0.1); pretraining, which the habit builds on, also "raises" it
    assert effects["vendor-lora"] > 0.1 and effects["vendor-lora"] > effects["sft"], effects
