"""Fidelity of the stage-attribution estimators against exact leave-stage-out replay.

    python bench/fidelity.py            # all scenarios (a few minutes on 2 cores)
    python bench/fidelity.py --quick    # without the long cost-ratio scenario
    python bench/fidelity.py --json out.json

For each scenario × estimator it prints Pearson, Spearman and sign agreement with ``replay``
(pooled over stage × per-example behaviours, and Pearson per stage), whether the top-1 blamed
(argmax) and top-1 credited (argmin) stage of the group behaviour agree with replay, and the cost
ratio time(estimator) / time(replay) (prepare + score, same behaviours).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.demo.record import record_version  # noqa: E402
from auditor.estimators import attribute  # noqa: E402
from bench.fidelity_scenarios import Scenario, scenarios  # noqa: E402

ESTIMATORS = ["aa", "naive", "tracin", "aa-hessian", "aa-ggn", "aa+plugin", "aa-hessian+plugin",
              "aa-ggn+plugin"]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def timed(version, root, task, behaviours, name):
    started = time.perf_counter()
    base, _, variant = name.partition("+")
    settings = {"plugin": {"plugin": True}, "jac": {"adam": "jacobian"},
                "shift": {"adam": "jacobian+shift"},
                "shift+plugin": {"adam": "jacobian+shift", "plugin": True}}.get(variant, {})
    effects = attribute(version, root, task, behaviours, base, **settings)
    return effects, time.perf_counter() - started


def measure(estimate, truth, group: int, replay_time: float, seconds: float) -> dict:
    examples = [i for i in range(truth.effects.shape[1]) if i != group]
    est, tru = estimate.effects[:, examples], truth.effects[:, examples]
    return {
        "pooled_pearson": pearson(est.ravel(), tru.ravel()),
        "pooled_spearman": float(spearmanr(est.ravel(), tru.ravel()).statistic),
        "sign": float(np.mean(np.sign(est) == np.sign(tru))),
        "per_stage": [pearson(est[k], tru[k]) for k in range(est.shape[0])],
        "top1_blamed": bool(np.argmax(estimate.effects[:, group])
                            == np.argmax(truth.effects[:, group])),
        "top1_credited": bool(np.argmin(estimate.effects[:, group])
                              == np.argmin(truth.effects[:, group])),
        "blamed": estimate.stages[int(np.argmax(estimate.effects[:, group]))],
        "seconds": seconds,
        "cost_ratio": seconds / replay_time,
    }


def run_scenario(scenario: Scenario, work: Path, estimators: list[str]) -> dict:
    folder = work / scenario.name
    started = time.perf_counter()
    version = record_version(scenario.plan, folder)
    recorded = time.perf_counter() - started
    task, behaviours = scenario.task(), scenario.behaviours()
    group = [b.name for b in behaviours].index(scenario.group)
    truth, replay_time = timed(version, folder, task, behaviours, "replay")
    rows = {"replay": {"seconds": replay_time,
                       "blamed": truth.stages[int(np.argmax(truth.effects[:, group]))],
                       "group_effects": truth.effects[:, group].tolist()}}
    for name in estimators:
        estimate, seconds = timed(version, folder, task, behaviours, name)
        rows[name] = measure(estimate, truth, group, replay_time, seconds)
        rows[name]["group_effects"] = estimate.effects[:, group].tolist()
    params = sum(p.numel() for p in task.build_model().parameters())
    return {"scenario": scenario.name, "stages": list(truth.stages), "parameters": params,
            "steps": [s.steps for s in version.stages], "record_seconds": recorded,
            "behaviours": len(behaviours), "group": scenario.group,
            "planted": scenario.planted, "rows": rows}


def print_scenario(result: dict) -> None:
    stages = result["stages"]
    rows = result["rows"]
    print(f"\n## {result['scenario']}  (P={result['parameters']}, steps={result['steps']}, "
          f"Q={result['behaviours']}, replay {rows['replay']['seconds']:.2f}s, "
          f"replay blames {rows['replay']['blamed']}, planted {result['planted']})")
    stage_cols = " ".join(f"{s[:10]:>10}" for s in stages)
    print(f"{'estimator':<11} {'pearson':>7} {'spearman':>8} {'sign':>5} {'top1+':>5} "
          f"{'top1-':>5} {'cost':>8}  per-stage r: {stage_cols}")
    for name, row in rows.items():
        if name == "replay":
            continue
        per_stage = " ".join(f"{r:>10.3f}" for r in row["per_stage"])
        print(f"{name:<11} {row['pooled_pearson']:>7.3f} {row['pooled_spearman']:>8.3f} "
              f"{row['sign']:>5.2f} {'yes' if row['top1_blamed'] else 'NO':>5} "
              f"{'yes' if row['top1_credited'] else 'NO':>5} {row['cost_ratio']:>8.4f}  "
              f"               {per_stage}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the long scenario")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--estimators", nargs="*", default=ESTIMATORS)
    parser.add_argument("--work", type=Path, help="folder for recorded runs (reused)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen = [s for s in scenarios(long=not args.quick) if not args.only or s.name in args.only]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for scenario in chosen:
            results.append(run_scenario(scenario, work, args.estimators))
            print_scenario(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
