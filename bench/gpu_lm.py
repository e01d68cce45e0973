"""The language-model scenario (auditor.demo.charlm, a tiny transformers GPT-2) on a GPU:
recorder overhead on CUDA, replay and estimator times, and CPU-vs-CUDA agreement of effects.

Called by bench/gpu_check.py when transformers is installed. Tolerances: ``aa`` effects agree to
``--tolerance`` (relative to the largest effect, as the digits check); ``replay`` re-trains on
CUDA, which is not bitwise, so its effects are held to ``REPLAY_TOLERANCE``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

REPLAY_TOLERANCE = 5e-2
STEPS = 60


def _train(model, task, device: str, recorder=None) -> float:
    from auditor.demo import charlm

    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    context = recorder.stage("s", kind="fine-tune", optimizer=opt) if recorder else None
    if context:
        context.__enter__()  # the boundary checkpoint is not a step's cost
    started = time.perf_counter()
    for _ in range(STEPS):
        ids = torch.randint(0, charlm.POOL_SIZE, (charlm.BATCH,), generator=gen)
        if recorder:
            recorder.batch(ids)
        loss = task.loss(model, task.batch("pretrain", ids).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    if context:
        context.__exit__(None, None, None)
    return seconds


def recorder_overhead(device: str, folder: str) -> float:
    """Step time with the recorder / without, on ``device`` (best of 3 each, interleaved;
    stage boundaries excluded)."""
    from auditor import Recorder
    from auditor.demo import charlm

    task, plain, recorded = charlm.task(), [], []
    for r in range(3):
        torch.manual_seed(0)
        plain.append(_train(task.build_model().to(device), task, device))
        torch.manual_seed(0)
        model = task.build_model().to(device)
        rec = Recorder(f"{folder}/overhead{r}", model, model_name="charlm", version=f"o{r}")
        recorded.append(_train(model, task, device, rec))
    return min(recorded) / min(plain)


def effects(version, root, name: str, device: str) -> tuple[np.ndarray, float]:
    from auditor.demo import charlm
    from auditor.estimators import attribute

    started = time.perf_counter()
    found = attribute(version, root, charlm.task(), charlm.behaviours(), name, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    return found.effects, time.perf_counter() - started


def lm_check(tolerance: float, device: str = "cuda") -> bool:
    from auditor.demo import charlm
    from auditor.demo.record import record_version

    ok = True
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        version = record_version(charlm.versions()[1], folder)
        print(f"charlm v2 recorded on CPU in {time.perf_counter() - started:.1f}s "
              f"({sum(s.steps for s in version.stages)} steps)")
        print(f"charlm recorder/plain step time on {device}: "
              f"{recorder_overhead(device, folder):.3f} (best of 3)")
        for name, limit in (("aa", tolerance), ("replay", REPLAY_TOLERANCE)):
            on_cpu, cpu_s = effects(version, folder, name, "cpu")
            on_dev, dev_s = effects(version, folder, name, device)
            error = float(np.abs(on_cpu - on_dev).max())
            relative = error / max(float(np.abs(on_cpu).max()), 1e-300)
            ok = ok and relative <= limit
            print(f"charlm {name:7s} max|cpu−{device}| {error:.3e} (relative {relative:.1e}, "
                  f"tolerance {limit:.0e})  cpu {cpu_s:6.2f}s  {device} {dev_s:6.2f}s")
    return ok
