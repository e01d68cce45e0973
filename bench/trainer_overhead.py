"""Hugging Face ``Trainer.train()`` with auditor's callback vs without, on a small GPT-2.

Interleaved rounds, each training a fresh model for ``STEPS`` steps both ways (the order
alternates from round to round, so neither way always runs on a warmer machine); prints the median
ratio of the in-loop time (first step to last step, goal <= 1.05), the time spent inside the
recording itself per step (the callback's step events and the optimizer post-step hook, timed
directly: the part of the ratio that is not noise) and, separately, the stage's boundary
checkpoints (written once per ``train()`` call). Called by bench/recorder_overhead.py;
alone: .venv/bin/python bench/trainer_overhead.py
"""

from __future__ import annotations

import tempfile
import time

import torch

STEPS, ROUNDS, BATCH, LENGTH = 40, 7, 8, 64


class Lines(torch.utils.data.Dataset):
    def __init__(self, vocab: int):
        gen = torch.Generator().manual_seed(0)
        self.rows = torch.randint(0, vocab, (BATCH * STEPS, LENGTH), generator=gen)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=LENGTH, n_embd=128, n_layer=2,
                                      n_head=4))


class Clock:
    """A callback timing the first step's begin to the last step's end."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _Clock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if clock.start is None:
                    clock.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                clock.end = time.perf_counter()

        self.callback = _Clock()
        self.start = self.end = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Own:
    """Seconds spent inside the recording's per-step code during one run."""

    def __init__(self):
        self.seconds = 0.0

    def timed(self, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return wrapper


def run(out: str, recorded: bool, own: Own | None = None) -> tuple[float, float]:
    """(in-loop seconds, whole train() seconds); ``own`` accumulates the recording's own
    per-step time."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from auditor import Recorder
    from auditor.integrations.transformers import AuditorCallback, RecordedData

    net = model()
    data = RecordedData(Lines(64), default_data_collator)
    clock = Clock()
    callbacks = [clock.callback]
    if recorded:
        recorder = Recorder(f"{out}/run", net, model_name="bench", version="v")
        callback = AuditorCallback(recorder, data, stage="s", kind="fine-tune")
        if own is not None:  # the step events and the post-step hook (bound before the stage)
            for name in ("on_step_begin", "on_pre_optimizer_step"):
                setattr(callback, name, own.timed(getattr(callback, name)))
            recorder._after_step = own.timed(recorder._after_step)
        callbacks.insert(0, callback)
    args = TrainingArguments(output_dir=f"{out}/out", per_device_train_batch_size=BATCH,
                             max_steps=STEPS, report_to=[], save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, use_cpu=True,
                             dataloader_num_workers=0)
    trainer = Trainer(model=net, args=args, train_dataset=data.dataset,
                      data_collator=data.collate, callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()  # the Trainer prints its own train_runtime line
    return clock.seconds, time.perf_counter() - start


def measure() -> dict[str, float]:
    import transformers

    transformers.logging.set_verbosity_error()
    plain, recorded, own = [], [], Own()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"{tmp}/warm", False)
        for r in range(ROUNDS):
            if r % 2:
                recorded.append(run(f"{tmp}/r{r}", True))
                plain.append(run(f"{tmp}/p{r}", False))
            else:
                plain.append(run(f"{tmp}/p{r}", False))
                recorded.append(run(f"{tmp}/r{r}", True))
        run(f"{tmp}/own", True, own)
    ratios = sorted(r[0] / p[0] for r, p in zip(recorded, plain))
    best_plain = min(p[0] for p in plain)
    boundary = min(r[1] - r[0] for r in recorded) - min(p[1] - p[0] for p in plain)
    return {"loop_ratio": ratios[len(ratios) // 2],
            "best_ratio": min(r[0] for r in recorded) / best_plain,
            "boundary_s": boundary, "step_s": best_plain / STEPS,
            "own_step_s": own.seconds / STEPS}


def report() -> None:
    found = measure()
    print(f"Trainer step time (plain)   {found['step_s'] * 1e3:.2f} ms  (GPT-2 2x128, batch "
          f"{BATCH}x{LENGTH})")
    print(f"Trainer callback/plain      {found['loop_ratio']:.3f} median of {ROUNDS} rounds, "
          f"{found['best_ratio']:.3f} best-of  (goal <= 1.05)")
    print(f"Trainer recording, own time {found['own_step_s'] * 1e3:.3f} ms per step "
          f"(= {found['own_step_s'] / found['step_s']:.4f} of a plain step)")
    print(f"Trainer stage boundaries    {found['boundary_s'] * 1e3:.0f} ms more per train() call "
          f"(= {found['boundary_s'] / found['step_s']:.1f} steps)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    report()
