"""Benchmark: ``auditor gate`` with a 50-rule policy over 10^6 stored score rows.

Prints the gate's time (read scores, compute metrics in SQL, evaluate, write results and the
verdict in one transaction) as a ratio to one plain DuckDB scan of the score table
(``SELECT * FROM stage_scores`` into Arrow). Goal: <= 3x.

    python bench/gate.py [--rows 1000000] [--rules 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # tests.support.factories builds the versions

from auditor.lineage.models import ModelVersion  # noqa: E402
from auditor.policy.evaluate import gate  # noqa: E402
from auditor.policy.load import LoadedPolicy, policy_hash  # noqa: E402
from auditor.policy.model import METRICS, Policy  # noqa: E402
from auditor.store import Store  # noqa: E402

STAGES, VERSIONS = 20, 20  # 2,500 behaviours at 10^6 rows
KINDS = ("pretrain", "fine-tune", "alignment")


def make_version(index: int) -> ModelVersion:
    from tests.support.factories import make_version as fake

    created = datetime(2026, 10, 1, tzinfo=timezone.utc) + timedelta(days=index)
    return fake("bench", f"v{index:02d}", stages=STAGES, created_at=created)


def score_block(version: ModelVersion, behaviours: int, rng: np.random.Generator) -> pa.Table:
    n = STAGES * behaviours
    stage = np.tile(np.arange(STAGES, dtype=np.int32), behaviours)
    names = np.array([f"b{q:04d}" for q in range(behaviours)], dtype=object)
    ids = np.array([s.id for s in version.stages], dtype=object)
    kinds = np.array([s.kind for s in version.stages], dtype=object)

    def const(value):
        return pa.array(np.full(n, value, dtype=object), pa.string())

    return pa.table({
        "model": const(version.model), "version": const(version.version),
        "stage_index": stage, "stage_id": pa.array(ids[stage], pa.string()),
        "stage_kind": pa.array(kinds[stage], pa.string()),
        "behaviour": pa.array(np.repeat(names, STAGES), pa.string()),
        "direction": const("harm"), "estimator": const("aa"), "estimator_version": const("1"),
        "convention": const("reset"), "config_hash": const("cfg-bench"),
        "effect": rng.normal(0.0, 0.1, n), "share": np.full(n, np.nan),
        "metric_value": rng.random(n)})


def build_store(path: Path, rows: int) -> str:
    behaviours = rows // (STAGES * VERSIONS)
    rng = np.random.default_rng(0)
    with Store.open(path) as store:
        for index in range(VERSIONS):
            version = make_version(index)
            with store.transaction():
                store.add_version(version)
                store.record_run("audit", {"version": version.key},
                                 scores=score_block(version, behaviours, rng))
    return f"bench@v{VERSIONS - 1:02d}"


def bench_policy(rules: int, behaviours: int) -> LoadedPolicy:
    rng = np.random.default_rng(1)
    declared = {f"b{q:04d}": {"direction": "harm"} for q in range(behaviours)}
    items = []
    for i in range(rules):
        metric = METRICS[i % len(METRICS)]
        rule = {"id": f"rule-{i:02d}", "rationale": "bench", "metric": metric,
                "comparator": (">", ">=", "<", "<=")[i % 4],
                "threshold": {"share": 0.3, "rank": 3.0}.get(metric, 0.15),
                "materiality": 0.05 if i % 3 == 0 else 0.0,
                "severity": ("block", "warn", "info")[i % 3]}
        if i % 10 == 9:  # a direction rule over one stage kind: every behaviour
            rule.update(direction="harm", stages={"kinds": [KINDS[i % 3]], "ids": ["s1", "s2"]})
        else:
            rule["behaviours"] = sorted(rng.choice(list(declared), 3, replace=False).tolist())
            rule["stages"] = ({"kinds": [KINDS[i % 3]]}, {"names": ["s1*"]}, {})[i % 3]
        items.append(rule)
    policy = Policy.model_validate({"policy": "bench", "version": "1", "behaviours": declared,
                                    "rules": items})
    return LoadedPolicy(policy, Path("bench.yaml"), policy_hash(policy))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        started = time.perf_counter()
        key = build_store(path, args.rows)
        print(f"setup: {args.rows:,} score rows in {time.perf_counter() - started:.1f}s")
        loaded = bench_policy(args.rules, args.rows // (STAGES * VERSIONS))
        with Store.open(path) as store:
            scan = best(lambda: store.conn.sql("SELECT * FROM stage_scores").to_arrow_table(),
                        args.repeat)
            agg = best(lambda: store.conn.sql(
                "SELECT count(*), sum(effect) FROM stage_scores").fetchall(), args.repeat)
            results = []
            timed = best(lambda: results.append(gate(store, key, loaded, today=date.today())),
                         args.repeat)
            result = results[-1]
            dry = best(lambda: gate(store, key, loaded, today=date.today(), write=False),
                       args.repeat)
    print(f"gate {key}: {args.rules} rules, {result.results.num_rows:,} result rows, "
          f"verdict {result.verdict}, previous {result.previous}")
    print(f"plain scan  SELECT * FROM stage_scores -> Arrow: {scan * 1e3:8.1f} ms")
    print(f"aggregate   SELECT count(*), sum(effect):        {agg * 1e3:8.1f} ms")
    print(f"gate (read + evaluate + write, one transaction): {timed * 1e3:8.1f} ms")
    print(f"gate without writing:                            {dry * 1e3:8.1f} ms")
    print(f"ratio gate / plain scan: {timed / scan:.2f}x (goal <= 3x)")
    print(f"ratio gate / aggregate scan: {timed / agg:.1f}x")


if __name__ == "__main__":
    main()
