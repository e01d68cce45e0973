"""Training-step time with the recorder vs without, on a ~1M-parameter MLP.

Prints the ratio (goal <= 1.05) measured over interleaved rounds, and the boundary-checkpoint
write time separately. Then the opt-in curvature sketch for ``aa-ggn`` projection
(``sketch=SketchSpec(1024, 4)``): its step time against the plain loop, in fewer rounds. With
the hf extra, the Hugging Face Trainer callback against a plain ``Trainer.train()``
(bench/trainer_overhead.py).
Run: .venv/bin/python bench/recorder_overhead.py
"""

from __future__ import annotations

import tempfile
import time

import torch
from torch import nn

from auditor import Recorder
from auditor.lineage.sketching.spec import SketchSpec

STEPS, ROUNDS, SKETCH_ROUNDS, BATCH = 40, 9, 3, 64


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return model, opt


DATA_X = torch.randn(4096, 512)
DATA_Y = torch.randint(0, 10, (4096,))


def train(model, opt, recorder=None):
    for step in range(STEPS):
        ids = torch.arange(step * BATCH, (step + 1) * BATCH) % 4096
        if recorder:
            recorder.batch(ids)
        loss = nn.functional.cross_entropy(model(DATA_X[ids]), DATA_Y[ids])
        opt.zero_grad()
        loss.backward()
        opt.step()


class BenchTask:
    """The loop's model, data and loss as a TrainingTask (the sketch evaluates the loss)."""

    def build_model(self):
        return make()[0]

    def batch(self, stage_id, ids):
        ids = torch.as_tensor(list(ids))
        return DATA_X[ids], DATA_Y[ids]

    def loss(self, model, batch, reduction="mean"):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y, reduction=reduction)


def bench_task() -> BenchTask:
    return BenchTask()


def sketched_ratios(tmp: str) -> list[float]:
    """Per round: step time recording with the sketch / plain step time."""
    ratios = []
    for r in range(SKETCH_ROUNDS):
        model, opt = make()
        train(model, opt)
        plain = timed(lambda m=model, o=opt: train(m, o))
        rec = Recorder(f"{tmp}/sketch{r}", model, model_name="bench", version=f"s{r}",
                       task="__main__:bench_task", sketch=SketchSpec(1024, 4))
        with rec.stage("first", kind="pretrain", optimizer=opt):  # never sketched
            train(model, opt, rec)
        with rec.stage("s", kind="fine-tune", optimizer=opt):
            ratios.append(timed(lambda m=model, o=opt, c=rec: train(m, o, c)) / plain)
    return sorted(ratios)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    torch.set_num_threads(1)
    plain, recorded, boundary = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            model, opt = make()
            train(model, opt)  # warm-up, also makes the optimizer state
            plain.append(timed(lambda m=model, o=opt: train(m, o)))
            model, opt = make()
            train(model, opt)
            rec = Recorder(f"{tmp}/{r}", model, model_name="bench", version=f"r{r}")
            t0 = time.perf_counter()
            with rec.stage("s", kind="fine-tune", optimizer=opt):
                t1 = time.perf_counter()
                train(model, opt, rec)
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            recorded.append(t2 - t1)
            boundary.append((t1 - t0) + (t3 - t2))
        sketched = sketched_ratios(tmp)
    params = sum(p.numel() for p in make()[0].parameters())
    # Interleaved rounds; the median of per-round ratios resists a noisy shared machine.
    ratios = sorted(r / p for r, p in zip(recorded, plain))
    best_plain, best_rec = min(plain), min(recorded)
    print(f"model parameters            {params:,}")
    print(f"step time without recorder  {best_plain / STEPS * 1e3:.2f} ms")
    print(f"step time with recorder     {best_rec / STEPS * 1e3:.2f} ms")
    print(f"ratio recorder/plain        {ratios[len(ratios) // 2]:.3f} median of {ROUNDS} rounds, "
          f"{best_rec / best_plain:.3f} best-of  (goal <= 1.05)")
    print(f"boundary checkpoints        {min(boundary) * 1e3:.1f} ms per stage "
          f"(= {min(boundary) / (best_plain / STEPS):.1f} training steps)")
    print(f"with the curvature sketch   ratio {sketched[len(sketched) // 2]:.2f} median of "
          f"{SKETCH_ROUNDS} rounds (opt-in, for aa-ggn projection=1024, samples=4)")
    from importlib.util import find_spec

    if find_spec("transformers") is not None:
        import trainer_overhead

        trainer_overhead.report()


if __name__ == "__main__":
    main()
