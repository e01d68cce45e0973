"""A short, prepared check for a machine with a GPU: do the estimators agree on CUDA and CPU?

    python bench/gpu_check.py                 # aa, aa-hessian, naive on the demo digits v2
    python bench/gpu_check.py --estimators aa

Records the demo's digits v2 (four stages) into a temporary folder, runs each estimator with
``device="cpu"`` and ``device="cuda"``, and prints the max abs difference of the effects and the
speed ratio time(cpu) / time(cuda) (prepare + score). Then one Ray task with ``num_gpus=1``
reports ``torch.cuda.is_available()`` and the settings the worker would add. Exits 0 printing
"no CUDA device: skipped" where CUDA is not available; exit 1 when an effect differs by more
than ``--tolerance`` (relative to the largest effect). With transformers installed it then runs
the language-model scenario (bench/gpu_lm.py: recorder overhead on CUDA, replay and ``aa`` times,
CPU-vs-CUDA agreement); ``--no-lm`` skips it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.demo import digits  # noqa: E402
from auditor.demo.plans import digits_versions  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402
from auditor.estimators import attribute  # noqa: E402

SKIPPED = "no CUDA device: skipped"


def timed_effects(version, root, name: str, device: str) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    effects = attribute(version, root, digits.task(), digits.behaviours(), name, device=device)
    if device != "cpu":
        torch.cuda.synchronize()
    return effects.effects, time.perf_counter() - started


def best_effects(version, root, name: str, device: str,
                 repeats: int = 3) -> tuple[np.ndarray, float]:
    """Effects and the best of ``repeats`` timings, after one untimed run (first-call set-up of
    torch.func and the CUDA libraries is not the estimator's cost)."""
    timed_effects(version, root, name, device)
    runs = [timed_effects(version, root, name, device) for _ in range(repeats)]
    return runs[0][0], min(seconds for _, seconds in runs)


def compare(version, root, name: str) -> tuple[float, np.ndarray]:
    """Relative CPU/CUDA difference of ``name``'s effects (and the CPU effects)."""
    on_cpu, cpu_s = best_effects(version, root, name, "cpu")
    on_cuda, cuda_s = best_effects(version, root, name, "cuda")
    error = float(np.abs(on_cpu - on_cuda).max())
    relative = error / max(float(np.abs(on_cpu).max()), 1e-300)
    print(f"{name:12s} max|cpu−cuda| {error:.3e} (relative {relative:.1e})  "
          f"cpu {cpu_s:7.2f}s  cuda {cuda_s:7.2f}s  speed ratio cpu/cuda {cpu_s / cuda_s:5.2f} "
          "(best of 3 after a warm-up run)")
    return relative, on_cpu


def ray_check(version, root, on_cpu: np.ndarray) -> None:
    """One Ray task with num_gpus=1: what it sees, and ``aa`` run with its default device
    ("auto": the GPU Ray granted, through CUDA_VISIBLE_DEVICES)."""
    import ray

    from auditor.estimators.device import resolve_device

    @ray.remote(num_cpus=1, num_gpus=1)
    def probe(version, root):
        settings = {"device": str(resolve_device("auto"))}
        effects = attribute(version, root, digits.task(), digits.behaviours(), "aa")
        return torch.cuda.is_available(), ray.get_gpu_ids(), settings, effects.effects

    repo = str(Path(__file__).resolve().parent.parent)
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             object_store_memory=200 * 1024 * 1024,
             runtime_env={"env_vars": {"PYTHONPATH": repo}})
    try:
        available, ids, settings, effects = ray.get(probe.remote(version, root), timeout=300)
    finally:
        ray.shutdown()
    print(f"ray task num_gpus=1: torch.cuda.is_available()={available} gpu_ids={ids} "
          f"worker settings={settings} aa max|cpu−ray| {np.abs(effects - on_cpu).max():.3e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="+", default=["aa", "aa-hessian", "naive"])
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray task")
    parser.add_argument("--no-lm", action="store_true", help="skip the language-model scenario")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(SKIPPED)
        return 0
    torch.zeros(1, device="cuda")  # CUDA context start-up out of the timings
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    plan = next(p for p in digits_versions() if p.version == "v2")
    with tempfile.TemporaryDirectory() as folder:
        version = record_version(plan, folder)
        results = {name: compare(version, folder, name) for name in args.estimators}
        worst = max(relative for relative, _ in results.values())
        if not args.no_ray:
            on_cpu = results["aa"][1] if "aa" in results else best_effects(
                version, folder, "aa", "cpu", repeats=1)[0]
            ray_check(version, folder, on_cpu)
    ok = worst <= args.tolerance
    from importlib.util import find_spec

    if not args.no_lm and find_spec("transformers") is not None:
        from gpu_lm import lm_check

        ok = lm_check(args.tolerance) and ok
    print(f"{'OK' if ok else 'FAIL'}: largest relative difference {worst:.1e} "
          f"(tolerance {args.tolerance:.0e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
