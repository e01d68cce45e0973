"""Memory and time of `aa`, `naive` and `replay` as the model grows (issue 20).

For MLPs of P ≈ 1M, 4M, 17M parameters (67M with --large) trained under the Recorder with AdamW
and with SGD (momentum), K stages × S steps, each estimator runs `prepare` + one behaviour in a
child process of its own. Printed per run:

* peak / model: (the model's bytes + the child's peak RSS above its baseline) / the model's
  bytes (float32). The baseline is what any torch program holding the model pays: the child
  has imported torch and auditor, built the task, loaded the final model θ_T, run one training
  step on it (forward, backward, ``AdamW.step()``: torch's first-use allocations, autograd,
  the matmul workspaces), then dropped the gradients and the optimizer state and handed freed
  memory back (``malloc_trim``). The peak is then reset (``/proc/self/clear_refs``) and the
  estimator's ``prepare`` + ``score`` run on that same model: the ratio counts the model once
  plus everything the estimator adds (the "extra" column alone);
* step ratio: prepare time per logged step / one `AdamW.step()` (or `SGD.step()`) on the same
  parameters, measured in a child of the same run;
* read ratio: prepare time / one read + sha256 check of every checkpoint of the lineage;
* maps ratio: (prepare time − that read + sha256 check) per logged step / one optimizer step:
  the stage maps' own cost (prepare reads and hashes every checkpoint once as well).

Then the sweeps in K (2, 4, 8) and in steps per stage (3, 12) at P ≈ 4M for each estimator run,
printed as ratios to K = 2 (and to 3 steps): flat memory reads 1.0.
`--only retrain` adds a reference row: replay's longest counterfactual retraining (stage 0 left
out) alone, the part of replay's peak that its bookkeeping cannot remove.

Run:  PYTHONPATH=$PWD .venv/bin/python bench/memory.py [--quick] [--large] [--only aa naive]
          [--sizes 4M 17M] [--sweep-size 4M] [--settings JSON]
      (--quick: P ≈ 1M and 4M only, no sweeps; --large: also P ≈ 67M (~8 GB); --settings:
      aa's and naive's settings, e.g. '{"precision": "float32"}' or '{"stream": false}' for
      the whole-model computation)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]

WIDTHS = {"1M": 512, "4M": 1024, "17M": 2048, "67M": 4096}
ESTIMATORS = ("aa", "naive", "replay")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return _rss_mb()


def _warm(task, model) -> None:
    """One training step on ``model`` (what any torch program training it has paid), then
    its gradients and optimizer state dropped and freed memory handed back."""
    import gc

    import torch

    from auditor.estimators.workspace import release_freed_memory

    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)  # lr 0: θ_T unchanged
    loss = task.loss(model, task.batch("s0", list(range(8))))
    loss.backward()
    optimizer.step()
    del optimizer, loss
    model.zero_grad(set_to_none=True)
    gc.collect()
    release_freed_memory()


# -- children ---------------------------------------------------------------------------------

def child_record(folder: str, width: int, optimizer: str, stages: int, steps: int) -> dict:
    import torch
    from memory_task import MemoryTask

    from auditor import Recorder

    torch.manual_seed(0)
    task = MemoryTask(width)
    model = task.build_model()
    rec = Recorder(folder, model, model_name="memory", version="v1", task="memory_task:task")
    opt = (torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
           if optimizer == "adamw" else
           torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4))
    gen = torch.Generator().manual_seed(1)
    for k in range(stages):
        with rec.stage(f"s{k}", kind="pretrain" if k == 0 else "fine-tune", optimizer=opt):
            for _ in range(steps):
                ids = torch.randint(0, 256, (8,), generator=gen)
                rec.batch(ids)
                loss = task.loss(model, task.batch(f"s{k}", ids))
                opt.zero_grad()
                loss.backward()
                opt.step()
    return {"parameters": sum(p.numel() for p in model.parameters())}


def child_estimate(folder: str, width: int, estimator: str, settings: str) -> dict:
    import torch
    from memory_task import MemoryTask, behaviour

    from auditor.estimators import get_estimator
    from auditor.lineage.counterfactual import load_model
    from auditor.lineage.recorder import load_lineage

    torch.set_num_threads(1)
    task = MemoryTask(width)
    version = load_lineage(folder)
    probe = behaviour(task)
    model = load_model(task, version, Path(folder), version.stages[-1].theta_end)
    _warm(task, model)
    reset = _reset_peak()
    base = _current_rss_mb()
    if estimator == "retrain":  # replay's inherent part: its longest retraining alone
        from auditor.lineage.counterfactual import run_without_stage

        started = time.perf_counter()
        run_without_stage(version, folder, task, 0)
        spent = time.perf_counter() - started
        return {"base_mb": base, "peak_mb": _peak_rss_mb() if reset else _rss_mb(),
                "prepare_s": spent, "total_s": spent, "effects": []}
    est = get_estimator(estimator, **json.loads(settings))
    started = time.perf_counter()
    embeddings = est.prepare(version, folder, task)
    prepared = time.perf_counter() - started
    effects = est.score(embeddings, [probe], model)
    total = time.perf_counter() - started
    return {"base_mb": base, "peak_mb": _peak_rss_mb() if reset else _rss_mb(),
            "prepare_s": prepared, "total_s": total,
            "effects": [float(v) for v in effects.effects[:, 0]]}


def child_reference(folder: str, width: int, optimizer: str) -> dict:
    import torch
    from memory_task import MemoryTask

    from auditor.lineage.checkpoints import load_tensors
    from auditor.lineage.recorder import load_lineage

    torch.set_num_threads(1)
    task = MemoryTask(width)
    model = task.build_model()
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt = (torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
           if optimizer == "adamw" else
           torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4))
    opt.step()  # state allocated
    times = []
    for _ in range(5):
        started = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - started)
    version = load_lineage(folder)
    started = time.perf_counter()
    refs = {}
    for stage in version.stages:
        for ref in (stage.theta_start, stage.theta_end, stage.optimizer_start,
                    stage.optimizer_end):
            if ref is not None:
                refs[ref.sha256] = ref
    for ref in refs.values():
        load_tensors(ref, folder)
    read = time.perf_counter() - started
    return {"step_s": sorted(times)[len(times) // 2], "read_s": read,
            "model_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}


def _child(kind: str, *args) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(BENCH)]))
    out = subprocess.run([sys.executable, __file__, "--child", kind, *map(str, args)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child {kind} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the parent -------------------------------------------------------------------------------

def measure(work: Path, size: str, optimizer: str, stages: int, steps: int,
            estimators, settings: str) -> list[dict]:
    width = WIDTHS[size]
    folder = work / f"{size}-{optimizer}-{stages}x{steps}"
    if not folder.exists():
        _child("record", folder, width, optimizer, stages, steps)
    ref = _child("reference", folder, width, optimizer)
    rows = []
    for name in estimators:
        run = _child("estimate", folder, width, name,
                     settings if name not in ("replay", "retrain") else "{}")
        model_mb = ref["model_bytes"] / 2**20
        extra = run["peak_mb"] - run["base_mb"]
        row = {"P": size, "opt": optimizer, "K": stages, "steps": steps, "estimator": name,
               "peak_over_model": 1.0 + extra / model_mb, "extra_over_model": extra / model_mb,
               "base_mb": run["base_mb"],
               "step_ratio": run["prepare_s"] / (stages * steps) / ref["step_s"],
               "read_ratio": run["prepare_s"] / ref["read_s"], "prepare_s": run["prepare_s"],
               "maps_ratio": max(0.0, run["prepare_s"] - ref["read_s"]) / (stages * steps)
               / ref["step_s"],
               "peak_mb": model_mb + extra, "model_mb": model_mb,
               "effects": run["effects"]}
        rows.append(row)
        print(f"{size:>4} {optimizer:<6} K={stages} S={steps:<3} {name:<7} "
              f"peak {row['peak_mb']:8.1f} MB = {row['peak_over_model']:5.2f}× model "
              f"(extra {row['extra_over_model']:5.2f}×; baseline {row['base_mb']:6.0f} MB)   "
              f"prepare {row['prepare_s']:7.2f} s = {row['step_ratio']:7.2f}× opt.step/step, "
              f"{row['read_ratio']:6.2f}× read+hash, maps {row['maps_ratio']:6.2f}× step",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large", action="store_true", help="also P ≈ 67M (a few GB of memory and disk)")
    parser.add_argument("--only", nargs="*", default=list(ESTIMATORS),
                        help="estimators to run; also `retrain`: replay's longest "
                        "counterfactual retraining (stage 0 left out) alone, its inherent part")
    parser.add_argument("--settings", default="{}", help="JSON settings for aa and naive, e.g. "
                        "'{\"precision\": \"float32\", \"spill_above_mb\": 0}'")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--sizes", nargs="*", choices=sorted(WIDTHS),
                        help="only these sizes (default: 1M 4M 17M, and 67M with --large)")
    parser.add_argument("--sweep-size", default="4M", choices=sorted(WIDTHS),
                        help="the size of the K and steps sweeps (default 4M)")
    args = parser.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        fn = {"record": child_record, "estimate": child_estimate,
              "reference": child_reference}[kind]
        typed = [int(a) if a.isdigit() else a for a in rest]
        print(json.dumps(fn(*typed)))
        return
    sizes = args.sizes or (["1M", "4M"] if args.quick else
                           ["1M", "4M", "17M"] + (["67M"] if args.large else []))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for size in sizes:
            for optimizer in ("adamw", "sgd"):
                rows += measure(work, size, optimizer, 4, 3, args.only, args.settings)
        if not args.quick:
            sweep = list(args.only)
            size = args.sweep_size
            base = [r for r in rows if r["P"] == size and r["opt"] == "adamw"]
            if not base:
                base = measure(work, size, "adamw", 4, 3, sweep, args.settings)
            swept = {(4, 3): base}
            for stages in (2, 8):
                swept[stages, 3] = measure(work, size, "adamw", stages, 3, sweep, args.settings)
            swept[4, 12] = measure(work, size, "adamw", 4, 12, sweep, args.settings)
            rows += [r for key, found in swept.items() if key != (4, 3) for r in found]
            print_sweeps(swept, sweep, size)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def print_sweeps(swept: dict, estimators, size: str) -> None:
    """Peak memory and time per logged step in K and in steps, as ratios to K = 2 / 3 steps."""
    def find(key, name):
        return next(r for r in swept[key] if r["estimator"] == name)

    print(f"\nsweeps (P ≈ {size}, AdamW): peak memory and prepare time per logged step, as "
          "ratios to K = 2, 3 steps per stage")
    for name in estimators:
        ref = find((2, 3), name)
        per_step = ref["prepare_s"] / (ref["K"] * ref["steps"])
        cells = []
        for key in ((2, 3), (4, 3), (8, 3), (4, 12)):
            r = find(key, name)
            cells.append(f"K={key[0]} S={key[1]}: peak {r['peak_mb'] / ref['peak_mb']:4.2f}× "
                         f"({r['peak_over_model']:4.2f}× model), time/step "
                         f"{r['prepare_s'] / (r['K'] * r['steps']) / per_step:4.2f}×")
        print(f"  {name:<6} " + " | ".join(cells))

if __name__ == "__main__":
    main()
