"""Every estimator's effects on every bench/fidelity.py scenario, bit for bit, as JSON.

    python scripts/effects_fingerprint.py OUT.json [--quick] [--only NAME ...]
    python scripts/effects_fingerprint.py --compare BEFORE.json AFTER.json

Records each scenario of ``bench/fidelity_scenarios.py`` (and its sketched twin for
``aa-ggn+proj``), then runs every estimator spec the fidelity bench runs, plus ``replay``, the
other Adam forms of the unrolled estimators and ``aa-stationary`` where the checkout still
registers it. Each effect, metric value and the estimator's config hash is written exactly
(``float.hex``). Run it on two checkouts and ``--compare`` the files: a refactoring that claims
no behaviour change must leave every entry they share identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.demo.record import record_version  # noqa: E402
from bench import fidelity  # noqa: E402
from bench.fidelity_scenarios import scenarios  # noqa: E402

EXTRA = ["replay", "aa-hessian+jac", "aa-hessian+shift", "aa-ggn+fixed", "aa-ggn+jac",
         "aa-ggn+fixed+plugin"]


# specs the bench does not run: reverse mode (first REVERSE_BEHAVIOURS behaviours only) and
# aa-stationary where still registered
DIRECT = {"aa-hessian:reverse": ("aa-hessian", {"mode": "reverse", "adam": "fixed"}),
          "aa-ggn:reverse": ("aa-ggn", {"mode": "reverse", "adam": "fixed"}),
          "aa-stationary": ("aa-stationary", {}),
          # run only when named by --estimators: the streamed aa's other forms (issue 20)
          "aa:unstreamed": ("aa", {"stream": False}),
          "aa:float32": ("aa", {"precision": "float32"}),
          "naive:unstreamed": ("naive", {"stream": False}),
          "naive:float32": ("naive", {"precision": "float32"}),
          # chunks of a few rows (a 1 KiB workspace), in memory and on disk
          "aa:chunked": ("aa", {"workspace_mb": 0.001}),
          "aa:chunked-disk": ("aa", {"workspace_mb": 0.001, "spill_above_mb": 0}),
          "naive:chunked": ("naive", {"workspace_mb": 0.001}),
          # every counterfactual model and displacement on disk (issue 20)
          "replay:spilled": ("replay", {"spill_above_mb": 0})}
REVERSE_BEHAVIOURS = 3


def direct(spec: str, runner):
    from auditor.estimators import get_estimator
    name, settings = DIRECT[spec]
    estimator = get_estimator(name, **settings)
    reverse = spec.endswith(":reverse")
    behaviours = runner.behaviours[:REVERSE_BEHAVIOURS] if reverse else runner.behaviours
    embeddings = estimator.prepare(*runner.args)
    return estimator.score(embeddings, behaviours, runner.model)


def registered() -> set[str]:
    from auditor.estimators import ESTIMATORS
    return set(ESTIMATORS)


def specs() -> list[str]:
    chosen = list(dict.fromkeys(EXTRA[:1] + fidelity.ESTIMATORS + EXTRA[1:]))
    chosen += ["aa-hessian:reverse", "aa-ggn:reverse"]
    if "aa-stationary" in registered():
        chosen.append("aa-stationary")
    return chosen


def fingerprint(effects) -> dict:
    return {"config_hash": effects.config_hash, "estimator": effects.estimator,
            "estimator_version": effects.estimator_version, "stages": list(effects.stages),
            "behaviours": list(effects.behaviours),
            "metric_values": [float(v).hex() for v in effects.metric_values],
            "effects": [[float(v).hex() for v in row] for row in effects.effects.tolist()]}


def run(work: Path, quick: bool, only: list[str] | None,
        estimators: list[str] | None = None) -> dict:
    out: dict[str, dict] = {}
    for scenario in scenarios(long=not quick):
        if only and scenario.name not in only:
            continue
        folder = work / scenario.name
        version = record_version(scenario.plan, folder)
        sketched = None
        if all(s.optimizer.kind == "sgd" for s in version.stages[1:]):
            sketched_folder = work / f"{scenario.name}-sketched"
            sketched = (record_version(scenario.plan, sketched_folder, sketch=fidelity.SKETCH),
                        sketched_folder)
        runner = fidelity.Runner(version, folder, scenario.task(), scenario.behaviours(),
                                 sketched, fidelity.SKETCH)
        out[scenario.name] = {}
        for spec in estimators or specs():
            if "+proj" in spec and sketched is None:
                continue
            if spec in DIRECT:
                effects = direct(spec, runner)
            else:
                effects, _, _ = runner.run(spec)
            out[scenario.name][spec] = fingerprint(effects)
            print(f"{scenario.name:<16} {spec:<24} done", flush=True)
    return out


def _close(old: list, new: list, rtol: float) -> float | None:
    """The largest difference relative to the largest |effect| of the row set, or None when
    the shapes differ."""
    a = [float.fromhex(c) for row in old for c in row]
    b = [float.fromhex(c) for row in new for c in row]
    if len(a) != len(b):
        return None
    scale = max((abs(x) for x in a), default=0.0) or 1.0
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0) / scale


def compare(before: dict, after: dict, rtol: float = 0.0) -> int:
    """Bit for bit, or with ``rtol``: effects within rtol × the largest |effect| of the
    (scenario, estimator) pass and are counted apart (and config hashes may differ only when
    the after side names another spec)."""
    compared = differ = close = 0
    worst = 0.0
    for scenario, rows in before.items():
        for spec, old in rows.items():
            new = after.get(scenario, {}).get(spec)
            if new is None:
                print(f"only before: {scenario} {spec}")
                continue
            for key in old:
                if key == "effects":
                    cells = [c for row in old[key] for c in row]
                    compared += len(cells)
                    if old[key] != new[key]:
                        gap = _close(old[key], new[key], rtol) if rtol else None
                        if gap is not None and gap <= rtol:
                            close += 1
                            worst = max(worst, gap)
                            continue
                        differ += 1
                        print(f"DIFFER {scenario} {spec}: effects"
                              + (f" (relative gap {gap:.3g})" if gap is not None else ""))
                elif old[key] != new.get(key):
                    differ += 1
                    print(f"DIFFER {scenario} {spec}: {key}")
    for scenario, rows in after.items():
        for spec in rows:
            if spec not in before.get(scenario, {}):
                print(f"only after: {scenario} {spec}")
    if rtol:
        print(f"{close} estimator runs within rtol {rtol:g} but not bitwise "
              f"(largest relative gap {worst:.3g})")
    print(f"{compared} effects compared; {differ} differences")
    return 1 if differ else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--quick", action="store_true", help="skip the long scenario")
    parser.add_argument("--only", nargs="*", help="scenario names")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--rtol", type=float, default=0.0,
                        help="with --compare: accept effects within RTOL of the largest |effect|")
    parser.add_argument("--estimators", nargs="*",
                        help="only these specs (also aa:unstreamed, aa:float32, naive:...)")
    parser.add_argument("--rename", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                        help="with --compare: compare AFTER's spec NEW against BEFORE's OLD")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        for old, new in args.rename:
            for rows in before.values():  # BEFORE's OLD is also compared as NEW
                if old in rows:
                    rows[new] = rows[old]
        sys.exit(compare(before, after, args.rtol))
    if args.out is None:
        parser.error("give OUT.json or --compare BEFORE AFTER")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), args.quick, args.only, args.estimators)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
