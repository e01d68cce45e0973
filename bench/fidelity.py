"""Fidelity of the stage-attribution estimators against exact leave-stage-out replay.

    python bench/fidelity.py            # all scenarios (a few minutes on 2 cores)
    python bench/fidelity.py --quick    # without the long cost-ratio scenario
    python bench/fidelity.py --json out.json --markdown tables.md   # tables as in docs/fidelity.md

For each scenario × estimator it prints Pearson, Spearman and sign agreement with ``replay``
(pooled over stage × per-example behaviours, and Pearson per stage), whether the top-1 blamed
(argmax) and top-1 credited (argmin) stage of the group behaviour agree with replay, and the cost
ratio time(estimator) / time(replay) (prepare + score, same behaviours; "prep": the
behaviour-agnostic preparation alone, against replay's retraining alone). Spec suffixes:
``+plugin`` scores f(θ_T) − f(θ_T − e_k); ``+fixed`` / ``+jac`` pick the Adam form of the
unrolled estimators (default ``jacobian+shift``); ``aa-ggn+fisher`` the empirical Fisher instead
of the Gauss–Newton curvature; ``aa-ggn+proj`` the random projection (1024 sketch coordinates per
tensor, 4 samples per step; ``--sketch DIM SAMPLES`` to change) from factors the recorder
logged — the scenario is recorded a second time with ``sketch=``, and "record ×" prints what
that costs against the plain recording (SGD scenarios only: the projection refuses Adam stages).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor import Recorder  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402
from auditor.estimators import get_estimator  # noqa: E402
from auditor.estimators.scoring.plugin import score_by_plugin  # noqa: E402
from auditor.lineage.counterfactual import final_model  # noqa: E402
from auditor.lineage.sketching.spec import SketchSpec  # noqa: E402
from bench.fidelity_scenarios import Scenario, scenarios  # noqa: E402

ESTIMATORS = ["aa", "aa+plugin", "naive", "tracin", "aa-hessian", "aa-hessian+plugin",
              "aa-hessian+fixed", "aa-ggn", "aa-ggn+plugin", "aa-ggn+fisher",
              "aa-ggn+fisher+plugin", "aa-ggn+proj"]
SKETCH = SketchSpec(dim=1024, samples=4)  # --sketch DIM SAMPLES changes it


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


VARIANTS = {"": {}, "jac": {"adam": "jacobian"}, "fixed": {"adam": "fixed"},
            "shift": {"adam": "jacobian+shift"}, "fisher": {"curvature": "fisher"}}


def sketch_settings(sketch: SketchSpec) -> dict:
    return {"projection": sketch.dim, "samples": sketch.samples, "sketch_seed": sketch.seed}


class Runner:
    """Runs estimator specs such as ``aa-hessian+plugin``; embeddings are prepared once per
    estimator and settings, and shared by its gradient and plug-in scoring."""

    def __init__(self, version, root, task, behaviours, sketched=None, sketch=SKETCH):
        self.args = (version, root, task)
        self.sketched = sketched  # (version, root) recorded with ``sketch``, for projection
        self.sketch = sketch
        self.behaviours = behaviours
        self.model = final_model(version, root, task)
        self.prepared: dict[tuple, tuple] = {}

    def run(self, spec: str):
        base, _, variant = spec.partition("+")
        plugin = variant.endswith("plugin")
        form = variant.removesuffix("plugin").rstrip("+")
        settings = sketch_settings(self.sketch) if form == "proj" else VARIANTS[form]
        estimator = get_estimator(base, **settings)
        key = (base, tuple(sorted(settings.items())))
        if key not in self.prepared:
            args = self.args if "projection" not in settings else (*self.sketched, self.args[2])
            gc.collect()  # the previous estimator's garbage is not this one's cost
            started = time.perf_counter()
            embeddings = estimator.prepare(*args)
            self.prepared[key] = (embeddings, time.perf_counter() - started)
        embeddings, prepare_time = self.prepared[key]
        started = time.perf_counter()
        if plugin:
            effects = score_by_plugin(embeddings, self.behaviours, self.model)
        else:
            effects = estimator.score(embeddings, self.behaviours, self.model)
        return effects, prepare_time + time.perf_counter() - started, prepare_time


def measure(estimate, truth, group: int, replay: tuple[float, float], seconds: float,
            prepare: float) -> dict:
    examples = [i for i in range(truth.effects.shape[1]) if i != group]
    est, tru = estimate.effects[:, examples], truth.effects[:, examples]
    return {
        "pooled_pearson": pearson(est.ravel(), tru.ravel()),
        "pooled_spearman": float(spearmanr(est.ravel(), tru.ravel()).statistic),
        "sign": float(np.mean(np.sign(est) == np.sign(tru))),
        "per_stage": [pearson(est[k], tru[k]) for k in range(est.shape[0])],
        "per_stage_spearman": [float(spearmanr(est[k], tru[k]).statistic)
                               for k in range(est.shape[0])],
        "per_stage_sign": [float(np.mean(np.sign(est[k]) == np.sign(tru[k])))
                           for k in range(est.shape[0])],
        "top1_blamed": bool(np.argmax(estimate.effects[:, group])
                            == np.argmax(truth.effects[:, group])),
        "top1_credited": bool(np.argmin(estimate.effects[:, group])
                              == np.argmin(truth.effects[:, group])),
        "blamed": estimate.stages[int(np.argmax(estimate.effects[:, group]))],
        "seconds": seconds,
        "cost_ratio": seconds / replay[0],
        "prepare_ratio": prepare / replay[1],
    }


def run_scenario(scenario: Scenario, work: Path, estimators: list[str],
                 sketch: SketchSpec = SKETCH) -> dict:
    folder = work / scenario.name
    scenario.task()  # load the dataset (cached) before timing the recording
    started = time.perf_counter()
    version = record_version(scenario.plan, folder)
    recorded = time.perf_counter() - started
    sketched, sketch_seconds = None, None
    wants_sketch = any("+proj" in e for e in estimators)
    if wants_sketch and all(s.optimizer.kind == "sgd" for s in version.stages[1:]):
        started = time.perf_counter()
        sketched_folder = work / f"{scenario.name}-sketched-{sketch.dim}-{sketch.samples}"
        sketched = (record_version(scenario.plan, sketched_folder, sketch=sketch),
                    sketched_folder)
        sketch_seconds = time.perf_counter() - started
    else:
        estimators = [e for e in estimators if "+proj" not in e]
    task, behaviours = scenario.task(), scenario.behaviours()
    group = [b.name for b in behaviours].index(scenario.group)
    runner = Runner(version, folder, task, behaviours, sketched, sketch)
    truth, replay_time, replay_prepare = runner.run("replay")
    rows = {"replay": {"seconds": replay_time, "prepare": replay_prepare,
                       "blamed": truth.stages[int(np.argmax(truth.effects[:, group]))],
                       "group_effects": truth.effects[:, group].tolist()}}
    effects = {}
    for name in estimators:
        estimate, seconds, prepare = runner.run(name)
        rows[name] = measure(estimate, truth, group, (replay_time, replay_prepare), seconds,
                             prepare)
        rows[name]["group_effects"] = estimate.effects[:, group].tolist()
        effects[name] = estimate.effects
    if "aa-ggn" in effects and "aa-ggn+proj" in effects:  # what the projection keeps
        rows["aa-ggn+proj"]["r_vs_full"] = pearson(effects["aa-ggn+proj"].ravel(),
                                                   effects["aa-ggn"].ravel())
    params = sum(p.numel() for p in task.build_model().parameters())
    return {"scenario": scenario.name, "stages": list(truth.stages), "parameters": params,
            "steps": [s.steps for s in version.stages], "record_seconds": recorded,
            "sketched_record_seconds": sketch_seconds,
            "behaviours": len(behaviours), "group": scenario.group,
            "planted": scenario.planted, "rows": rows}


def print_scenario(result: dict) -> None:
    stages = result["stages"]
    rows = result["rows"]
    print(f"\n## {result['scenario']}  (P={result['parameters']}, steps={result['steps']}, "
          f"Q={result['behaviours']}, replay {rows['replay']['seconds']:.2f}s, "
          f"replay blames {rows['replay']['blamed']}, planted {result['planted']})")
    if "r_vs_full" in rows.get("aa-ggn+proj", {}):
        print(f"aa-ggn+proj against aa-ggn's own effects (all behaviours): pooled r "
              f"{rows['aa-ggn+proj']['r_vs_full']:.3f}")
    if result["sketched_record_seconds"]:
        print(f"recording with the curvature sketch: {result['sketched_record_seconds']:.1f}s, "
              f"record × {result['sketched_record_seconds'] / result['record_seconds']:.1f} "
              f"the plain recording ({result['record_seconds']:.1f}s)")
    stage_cols = " ".join(f"{s[:14]:>14}" for s in stages)
    print(f"{'estimator':<24} {'pearson':>7} {'spearman':>8} {'sign':>5} {'top1+':>5} "
          f"{'top1-':>5} {'cost':>7} {'prep':>7}  per-stage r/ρ/sign: {stage_cols}")
    for name, row in rows.items():
        if name == "replay":
            continue
        per_stage = " ".join(f"{r:>4.2f}/{p:>4.2f}/{g:.2f}".rjust(14) for r, p, g in zip(
            row["per_stage"], row["per_stage_spearman"], row["per_stage_sign"]))
        print(f"{name:<24} {row['pooled_pearson']:>7.3f} {row['pooled_spearman']:>8.3f} "
              f"{row['sign']:>5.2f} {'yes' if row['top1_blamed'] else 'NO':>5} "
              f"{'yes' if row['top1_credited'] else 'NO':>5} {row['cost_ratio']:>7.3f} "
              f"{row['prepare_ratio']:>7.3f}  {'':>19} {per_stage}")


def markdown(result: dict) -> str:
    """One scenario as the table docs/fidelity.md shows."""
    stages = ", ".join(result["stages"])
    replay = result["rows"]["replay"]
    lines = [f"### {result['scenario']} — P = {result['parameters']}, steps "
             f"[{', '.join(map(str, result['steps']))}], Q = {result['behaviours']}, replay "
             f"{replay['seconds']:.2f} s; replay blames `{replay['blamed']}` (planted "
             f"`{result['planted']}`)", "",
             *_record_line(result),
             "| estimator | pooled r | Spearman | sign | top-1 blamed | top-1 credited | "
             f"cost / replay | prepare / replay | per-stage r ({stages}) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        if name == "replay":
            continue
        lines.append(
            f"| {name} | {row['pooled_pearson']:.3f} | {row['pooled_spearman']:.3f} | "
            f"{row['sign']:.2f} | {'yes' if row['top1_blamed'] else 'no'} | "
            f"{'yes' if row['top1_credited'] else 'no'} | {row['cost_ratio']:.4f} | "
            f"{row['prepare_ratio']:.4f} | {', '.join(f'{r:.2f}' for r in row['per_stage'])} |")
    return "\n".join(lines) + "\n"


def _record_line(result: dict) -> list[str]:
    sketched, plain = result["sketched_record_seconds"], result["record_seconds"]
    if not sketched:
        return []
    return [f"Recording with the curvature sketch (for `aa-ggn+proj`): {sketched:.1f} s, "
            f"{sketched / plain:.1f}× the plain recording ({plain:.1f} s).", ""]


def warm_up() -> None:
    """torch.func's first forward-mode pass in a process costs ~0.2 s of one-off set-up; pay it
    before timing anything, as a long-running audit process has."""
    model, x = torch.nn.Linear(2, 2), torch.zeros(1, 2)
    params = {name: p.detach() for name, p in model.named_parameters()}
    torch.func.jvp(lambda p: torch.func.functional_call(model, p, (x,)), (params,),
                   ({name: torch.ones_like(p) for name, p in params.items()},))
    # the first recording in a process pays one-off imports and set-up (~1 s)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(tmp, model, model_name="warm-up", version="v")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with recorder.stage("only", kind="pretrain", optimizer=optimizer):
            recorder.batch([0])
            model(x).sum().backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the long scenario")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--estimators", nargs="*", default=ESTIMATORS)
    parser.add_argument("--work", type=Path, help="folder for recorded runs (reused)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the tables of docs/fidelity.md here")
    parser.add_argument("--sketch", nargs=2, type=int, metavar=("DIM", "SAMPLES"),
                        default=(SKETCH.dim, SKETCH.samples),
                        help="aa-ggn+proj: sketch buckets per tensor and samples per step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warm_up()
    chosen = [s for s in scenarios(long=not args.quick) if not args.only or s.name in args.only]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for scenario in chosen:
            results.append(run_scenario(scenario, work, args.estimators,
                                        SketchSpec(*args.sketch)))
            print_scenario(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.markdown:
        args.markdown.write_text("\n".join(markdown(result) for result in results))


if __name__ == "__main__":
    main()
