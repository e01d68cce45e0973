"""Hugging Face ``Trainer.train()`` with auditor's callback vs without, on a small GPT-2.

Made to hold on a shared, noisy machine: many short interleaved rounds (the order alternates
from round to round, so neither way always runs on a warmer machine), each training a fresh
model for ``STEPS`` steps both ways. Every step is timed on its own (one step-begin to the next,
so data loading, the callbacks and the optimizer hook all count) and a run is summarised by its
median step, so a burst of load from another process spoils a few steps, not a run. Prints the
ratio recorded/plain of the median step pooled over all rounds (goal <= 1.05), the paired
per-round ratios' median and spread (the machine's noise), the time spent inside the recording
itself per step (the callback's step events and the optimizer post-step hook, timed directly:
the part of the ratio that is not noise) as a share of a plain step and, separately, the stage's
boundary checkpoints (written once per ``train()`` call). The plain run uses the dataset and
collator as they are (no ``RecordedData``). Called by bench/recorder_overhead.py; alone:
.venv/bin/python bench/trainer_overhead.py
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

STEPS, ROUNDS, WARM, BATCH, LENGTH = 24, 11, 2, 8, 64


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
    """A callback noting when every step begins and when the last one ends."""

    def __init__(self):
        from transformers import TrainerCallback

        clock = self

        class _Clock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                clock.marks.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                clock.end = time.perf_counter()

        self.callback = _Clock()
        self.marks: list[float] = []
        self.end = None

    @property
    def seconds(self) -> float:
        return self.end - self.marks[0]

    def steps(self) -> list[float]:
        """Each step's seconds, after the first ``WARM`` steps."""
        marks = self.marks + [self.end]
        return [b - a for a, b in zip(marks, marks[1:])][WARM:]


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


def run(out: str, recorded: bool, own: Own | None = None) -> tuple[list[float], float, float]:
    """(each step's seconds, in-loop seconds, whole train() seconds); ``own`` accumulates the
    recording's own per-step time."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from auditor import Recorder
    from auditor.integrations.transformers import AuditorCallback, RecordedData

    net = model()
    clock = Clock()
    callbacks = [clock.callback]  # first: its step-begin mark precedes the recording's
    dataset, collate = Lines(64), default_data_collator
    if recorded:
        data = RecordedData(dataset, collate)
        dataset, collate = data.dataset, data.collate
        recorder = Recorder(f"{out}/run", net, model_name="bench", version="v")
        callback = AuditorCallback(recorder, data, stage="s", kind="fine-tune")
        if own is not None:  # the step events and the post-step hook (bound before the stage)
            for name in ("on_step_begin", "on_pre_optimizer_step"):
                setattr(callback, name, own.timed(getattr(callback, name)))
            recorder._after_step = own.timed(recorder._after_step)
        callbacks.append(callback)
    args = TrainingArguments(output_dir=f"{out}/out", per_device_train_batch_size=BATCH,
                             max_steps=STEPS, report_to=[], save_strategy="no",
                             logging_strategy="no", disable_tqdm=True, use_cpu=True,
                             dataloader_num_workers=0)
    trainer = Trainer(model=net, args=args, train_dataset=dataset, data_collator=collate,
                      callbacks=callbacks)
    start = time.perf_counter()
    trainer.train()  # the Trainer prints its own train_runtime line
    return clock.steps(), clock.seconds, time.perf_counter() - start


def measure() -> dict[str, float]:
    import transformers

    transformers.logging.set_verbosity_error()
    plain, recorded, own = [], [], Own()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"{tmp}/warm", False)
        for r in range(ROUNDS):
            pair = [(f"{tmp}/p{r}", False, plain), (f"{tmp}/r{r}", True, recorded)]
            for out, is_recorded, into in (pair[::-1] if r % 2 else pair):
                into.append(run(out, is_recorded))
        run(f"{tmp}/own", True, own)
    median = statistics.median
    paired = sorted(median(r[0]) / median(p[0]) for r, p in zip(recorded, plain))
    quartiles = statistics.quantiles(paired, n=4)
    plain_steps = [t for p in plain for t in p[0]]
    recorded_steps = [t for r in recorded for t in r[0]]
    plain_step = median(plain_steps)
    pooled = median(recorded_steps) / plain_step
    boundary = min(r[2] - r[1] for r in recorded) - min(p[2] - p[1] for p in plain)
    return {"loop_ratio": median(paired), "ratio_q1": quartiles[0], "ratio_q3": quartiles[2],
            "pooled_ratio": pooled,
            "best_ratio": min(median(r[0]) for r in recorded) / min(median(p[0]) for p in plain),
            "boundary_s": boundary, "step_s": plain_step,
            "own_step_s": own.seconds / STEPS}


def report() -> None:
    found = measure()
    print(f"Trainer step time (plain)   {found['step_s'] * 1e3:.2f} ms  (GPT-2 2x128, batch "
          f"{BATCH}x{LENGTH}; median step)")
    print(f"Trainer callback/plain      {found['pooled_ratio']:.3f} median step over {ROUNDS} "
          f"interleaved rounds of {STEPS} steps  (goal <= 1.05)")
    print(f"  per round (paired)        {found['loop_ratio']:.3f} median, quartiles "
          f"{found['ratio_q1']:.3f}-{found['ratio_q3']:.3f}, best-of "
          f"{found['best_ratio']:.3f}  (the spread is the machine's noise)")
    print(f"Trainer recording, own time {found['own_step_s'] * 1e3:.3f} ms per step "
          f"(= {found['own_step_s'] / found['step_s']:.4f} of a plain step)")
    print(f"Trainer stage boundaries    {found['boundary_s'] * 1e3:.0f} ms more per train() call "
          f"(= {found['boundary_s'] / found['step_s']:.1f} steps)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    report()
