"""Throughput of an audit of 32 small model versions: local executor vs Ray on 1 and 2 CPUs,
the driver's peak memory for 8 / 16 / 32 versions, and where an item's time goes.

Goals: Ray 2 CPUs >= 1.7x Ray 1 CPU; Ray 1 CPU >= 0.8x local (local runs torch on one thread:
the same CPU budget as one Ray task); driver peak RSS flat in the number of versions.

Run:  .venv/bin/python bench/scale.py            (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path[:0] = [str(ROOT), str(BENCH)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH)])
os.environ.pop("RAY_ADDRESS", None)

import torch  # noqa: E402

from auditor import Recorder, api  # noqa: E402
from auditor.execution.spec import AuditSpec  # noqa: E402

VERSIONS, BASES, STAGES, ROUNDS = 32, 4, ("pretrain", "finetune", "align"), 3
OBJECT_STORE = 150 * 1024 * 1024


def record_base(folder: Path, index: int):
    from scale_task import task

    work = task()
    torch.manual_seed(index)
    model = work.build_model()
    rec = Recorder(folder, model, model_name="scale", version=f"base{index}",
                   task="scale_task:task", seed=index)
    for stage in STAGES:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with rec.stage(stage, kind="pretrain" if stage == "pretrain" else "fine-tune",
                       optimizer=opt):
            for _ in range(3):
                ids = torch.randint(0, 4096, (64,))
                rec.batch(ids)
                loss = work.loss(model, work.batch(stage, ids))
                opt.zero_grad()
                loss.backward()
                opt.step()
    return rec.lineage


def build_store(base: Path) -> tuple[Path, list[str]]:
    """32 versions of model "scale" (4 recorded lineages, each under 8 version names)."""
    db, keys = base / "template.duckdb", []
    lineages = [(record_base(base / f"base{i}", i), base / f"base{i}") for i in range(BASES)]
    for n in range(VERSIONS):
        lineage, folder = lineages[n % BASES]
        clone = lineage.model_copy(update={"version": f"v{n:03d}",
                                           "created_at": lineage.created_at + timedelta(hours=n)})
        api.add_version(clone, folder, db=db)
        keys.append(clone.key)
    return db, keys


def spec(keys: list[str]) -> AuditSpec:
    return AuditSpec(name="scale bench", versions={"ids": keys}, estimators=["naive"],
                     behaviours="scale_task:behaviours")


def timed_audit(template: Path, keys: list[str], executor) -> float:
    """Seconds for one audit of ``keys`` into a fresh copy of the store."""
    db = template.with_name(f"run-{time.monotonic_ns()}.duckdb")
    shutil.copy(template, db)
    started = time.perf_counter()
    summary = api.run_audit(spec(keys), db=db, executor=executor, progress=False)
    seconds = time.perf_counter() - started
    assert summary.done == len(keys) and not summary.failed, summary.failures
    db.unlink()
    return seconds


def local_round(template: Path, keys: list[str], threads: int = 1) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return timed_audit(template, keys, "local")
    finally:
        torch.set_num_threads(previous)


def ray_round(template: Path, keys: list[str], cpus: int, rss_counts=()) -> tuple[float, dict]:
    """Start Ray with ``cpus`` CPUs, warm its workers, time the audit; with ``rss_counts``, also
    measure fresh drivers on this cluster. Ray start-up is not counted."""
    import ray

    from auditor.execution.ray_executor import RayExecutor

    ray.init(address="local", num_cpus=cpus, include_dashboard=False,
             object_store_memory=OBJECT_STORE, logging_level="WARNING")
    try:
        executor = RayExecutor()
        timed_audit(template, keys[: 2 * cpus], executor)  # warm: workers import torch once
        seconds = timed_audit(template, keys, executor)
        address = ray.get_runtime_context().gcs_address
        return seconds, {n: driver_rss(address, template, n) for n in rss_counts}
    finally:
        ray.shutdown()


def driver_rss(address: str, template: Path, count: int) -> int:
    """Peak RSS (MiB) of a fresh driver process auditing ``count`` versions on the cluster."""
    out = subprocess.run([sys.executable, __file__, "--rss-child", address, str(template),
                          str(count)], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["rss_mib"]


def rss_child(address: str, template: str, count: int) -> None:  # in a fresh process
    from auditor.execution.ray_executor import RayExecutor
    from auditor.store import Store

    with Store.open(template, read_only=True) as store:
        keys = [info.key for info in store.list_versions()][:count]
    timed_audit(Path(template), keys, RayExecutor(address))
    print(json.dumps({"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


def breakdown(template: Path, keys: list[str]) -> dict[str, float]:
    """Mean milliseconds per item: checkpoint loading (hash + read), the estimator, the insert."""
    from auditor.execution.planner import plan_audit, with_lineage
    from auditor.execution.worker import run_item
    from auditor.lineage.checkpoints import load_tensors
    from auditor.store import Store

    db = template.with_name("breakdown.duckdb")
    shutil.copy(template, db)
    torch.set_num_threads(1)
    load = total = insert = 0.0
    with Store.open(db) as store:
        items = list(with_lineage(plan_audit(spec(keys[:8]), store).todo, store))
        for item in items:
            version = api.ModelVersion.model_validate_json(item.version_json)
            root = Path(item.root_uri.removeprefix("file://"))
            started = time.perf_counter()
            for stage in version.stages:
                load_tensors(stage.theta_start, root), load_tensors(stage.theta_end, root)
            load_tensors(version.stages[-1].theta_end, root)
            load += time.perf_counter() - started
            started = time.perf_counter()
            rows = run_item(item)
            total += time.perf_counter() - started
            started = time.perf_counter()
            store.record_run("attribution", item.run_config(), scores=rows)
            insert += time.perf_counter() - started
    n = len(items)
    return {"checkpoint_load_ms": 1e3 * load / n, "estimator_ms": 1e3 * (total - load) / n,
            "item_total_ms": 1e3 * total / n, "insert_ms": 1e3 * insert / n,
            "rows_per_item": rows.num_rows}


def io_rates(base: Path) -> dict[str, float]:
    """MB/s of checkpoint hashing and safetensors reads on a 128 MB file (the loading path of a
    worker), and driver insert ms for an item of 9 and of 480 score rows."""
    from safetensors.torch import load_file, save_file

    from auditor.hashing import sha256_file

    path = base / "big.safetensors"
    save_file({"w": torch.randn(32 * 1024 * 1024)}, str(path))
    size = path.stat().st_size / 1e6
    started = time.perf_counter()
    sha256_file(path)
    hashed = time.perf_counter() - started
    started = time.perf_counter()
    float(load_file(str(path))["w"].sum())  # safetensors maps the file: touch every byte
    read = time.perf_counter() - started
    path.unlink()
    return {"sha256_MB_s": size / hashed, "safetensors_cached_read_MB_s": size / read,
            **{f"insert_{n}_rows_ms": insert_ms(base, n) for n in (9, 480)}}


def insert_ms(base: Path, rows: int, items: int = 20) -> float:
    import pyarrow as pa

    from auditor.execution.rows import SCORE_SCHEMA
    from auditor.store import Store

    row = {"model": "m", "version": "v", "stage_index": 0, "stage_id": "s", "stage_kind": "k",
           "behaviour": "b", "direction": "harm", "estimator": "aa", "estimator_version": "1",
           "convention": "reset", "config_hash": "c" * 16, "effect": 0.1, "share": 0.5,
           "metric_value": 0.2}
    table = pa.Table.from_pylist([row] * rows, schema=SCORE_SCHEMA)
    db = base / f"insert-{rows}.duckdb"
    with Store.open(db) as store:
        store.record_run("attribution", {"warm": True}, scores=table)
        started = time.perf_counter()
        for index in range(items):
            store.record_run("attribution", {"item": index}, scores=table)
        return 1e3 * (time.perf_counter() - started) / items


def main() -> None:
    os.environ["HOME"] = tempfile.mkdtemp(prefix="bench-home-")  # Ray writes ~/.ray here
    base = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    best = {"local": float("inf"), "ray1": float("inf"), "ray2": float("inf")}
    load = os.getloadavg()[0]
    try:
        template, keys = build_store(base)
        local_round(template, keys[:2])  # warm imports
        rss: dict[int, int] = {}
        for round_index in range(ROUNDS):  # interleaved, best of ROUNDS: the box is shared
            best["local"] = min(best["local"], local_round(template, keys))
            best["ray1"] = min(best["ray1"], ray_round(template, keys, 1)[0])
            seconds, measured = ray_round(template, keys, 2, () if round_index else (8, 16, 32))
            best["ray2"] = min(best["ray2"], seconds)
            rss = rss or measured
        threads = os.cpu_count() or 1
        local_all = local_round(template, keys, threads)
        parts = breakdown(template, keys)
        rates = io_rates(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(best, local_all, threads, rss, parts, rates, (load, os.getloadavg()[0]))


def report(best, local_all, threads, rss, parts, rates, load) -> None:
    n, local, ray1, ray2 = VERSIONS, best["local"], best["ray1"], best["ray2"]
    print(f"{n} versions x {len(STAGES)} stages x 3 behaviours, estimator naive, best of "
          f"{ROUNDS} interleaved rounds; load average {load[0]:.1f} -> {load[1]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for name, seconds in (("local, torch 1 thread", local),
                          (f"local, torch {threads} threads (one run)", local_all),
                          ("ray, 1 CPU", ray1), ("ray, 2 CPUs", ray2)):
        print(f"  {name:<34} {seconds:6.2f} s  {n / seconds:6.2f} versions/s")
    print(f"ray 2 CPUs / ray 1 CPU : {ray1 / ray2:.2f}x  (goal >= 1.70) "
          f"{'OK' if ray1 / ray2 >= 1.7 else 'BELOW GOAL'}")
    print(f"ray 1 CPU / local      : {local / ray1:.2f}x  (goal >= 0.80) "
          f"{'OK' if local / ray1 >= 0.8 else 'BELOW GOAL'}")
    print("driver peak RSS (MiB) : " + ", ".join(f"{k} versions {v}" for k, v in rss.items()))
    print("per item (one pass)   : " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    print("I/O rates             : " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    overhead = ray1 / n - (parts["item_total_ms"] + parts["insert_ms"]) / 1e3
    print(f"ray overhead per task : {1e3 * overhead:.1f} ms (best ray 1 CPU time per item less "
          "one pass's item + insert)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
