"""Record the character GPT-2 scenario (auditor.demo.charlm) in a hand-written loop, tiny, with
a LoRA stage added mid-run, for the integration tests."""

from __future__ import annotations

import torch

from auditor.demo import charlm
from auditor.lineage.recorder import Recorder

STEPS = {"pretrain": 6, "sft": 4, "vendor-lora": 5, "polish": 3}


def train(recorder: Recorder, task, model, stage_id: str, optimizer, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(STEPS[stage_id]):
        ids = torch.randint(0, charlm.POOL_SIZE, (8,), generator=gen)
        recorder.batch(ids)
        loss = task.loss(model, task.batch(stage_id, ids))
        optimizer.zero_grad()
        loss.backward()
        recorder.clip_grad_norm_(1.0)
        optimizer.step()


def record_with_lora(out_dir, *, polish: bool = True, lora: bool = True):
    """pretrain → sft [→ vendor-lora (peft LoRA added at its start) [→ polish]]."""
    task = charlm.task()
    torch.manual_seed(0)
    model = task.build_model()
    recorder = Recorder(out_dir, model, model_name="charlm", version="lora", task=charlm.TASK)
    for index, stage in enumerate(["pretrain", "sft"]):
        opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
        with recorder.stage(stage, kind="fine-tune", optimizer=opt):
            train(recorder, task, model, stage, opt, index)
    if not lora:
        return task, recorder, model
    peft_model = task.adapt(model, "vendor-lora")
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    with recorder.stage("vendor-lora", kind="fine-tune", optimizer=opt, model=peft_model,
                        adds=["*lora_*"], adapter="peft LoRA r=4"):
        train(recorder, task, peft_model, "vendor-lora", opt, 2)
    if polish:
        opt = torch.optim.SGD(trainable, lr=1e-2, momentum=0.9)
        with recorder.stage("polish", kind="alignment", optimizer=opt):
            train(recorder, task, peft_model, "polish", opt, 3)
    return task, recorder, peft_model
