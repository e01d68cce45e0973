"""A Hugging Face Trainer task for the integration tests: the character GPT-2 of
auditor.demo.charlm, trained through ``transformers.Trainer`` on dict examples."""

from __future__ import annotations

import torch

from auditor.demo import charlm
from auditor.integrations.transformers import TrainerTask

TASK = "tests.support.hftask:task"


class Lines(torch.utils.data.Dataset):
    def __init__(self, pool: str):
        self.rows = charlm._data()[pool][:64]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        return {"input_ids": row, "labels": row}


class CharTrainerTask(TrainerTask):
    def build_model(self):
        return charlm.task().build_model()

    def adapt(self, model, stage_id):
        return charlm.task().adapt(model, stage_id)

    def dataset(self, stage_id):
        return Lines(charlm.POOLS[stage_id])


def task() -> CharTrainerTask:
    return CharTrainerTask()


def arguments(out_dir, **overrides):
    from transformers import TrainingArguments

    options = dict(output_dir=str(out_dir), per_device_train_batch_size=4,
                   gradient_accumulation_steps=2, max_steps=4, learning_rate=5e-3,
                   warmup_steps=1, lr_scheduler_type="linear", max_grad_norm=0.5,
                   weight_decay=0.01, report_to=[], save_strategy="no", logging_strategy="no",
                   disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=0)
    options.update(overrides)
    return TrainingArguments(**options)
