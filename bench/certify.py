"""Certified verdicts against full replay, on the scenarios of bench/fidelity.py and the demo.

    python bench/certify.py                 # every audit (a few minutes on 2 cores)
    python bench/certify.py --quick         # without digits-long
    python bench/certify.py --grid          # every band form (normalisation x pooling x strata)

Each audit is recorded, scored with the estimator (``aa``) and replayed in full: every unit
(version, stage k) exactly, timed. Then the certified loop runs as ``auditor gate --certify``
does — a seeded stratified calibration sample of units, split-conformal bands, decisions on
intervals, replay of the units close rows depend on, confirmation of estimated failures — with
the replays answered from the full replay (same numbers, so the run costs nothing twice; its
cost is the measured seconds of the units it asked for). It prints, per audit and policy:

- ``agree``: certified outcomes equal to the full-replay outcomes, over all rule rows (the target
  is 100%), and whether the verdicts are equal;
- ``cover``: the share of estimated rows (units not replayed for calibration) whose band holds
  the exact effect, pooled, and per stage kind (target ≥ 88% at nominal 90%);
- ``cost``: (estimator seconds + seconds of the units replayed) / seconds of the full replay,
  and the same in training steps;
- how many rows were decided by estimate, by replay, or left INDETERMINATE.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.certify.conformal import UnitSample, calibrate, scales  # noqa: E402
from auditor.certify.loop import certify  # noqa: E402
from auditor.certify.sampling import sample_units  # noqa: E402
from auditor.certify.table import EffectTable  # noqa: E402
from auditor.demo import digits, plans, toxicity  # noqa: E402
from auditor.demo.record import record_version  # noqa: E402
from auditor.estimators import attribute  # noqa: E402
from auditor.execution.replay_units import unit_effects  # noqa: E402
from auditor.policy.load import load_policy  # noqa: E402
from auditor.policy.metrics import ScoreContext  # noqa: E402
from bench.certify_fallback import fallback  # noqa: E402
from bench.fidelity import warm_up  # noqa: E402
from bench.fidelity_scenarios import scenarios  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POLICIES = {"default": ROOT / "policies" / "default.yaml",
            "strict": ROOT / "policies" / "strict.yaml"}
TODAY = date(2026, 12, 1)


@dataclass
class Prepared:
    key: str
    model: str
    table: EffectTable
    exact: np.ndarray  # (K, Q)
    unit_seconds: list[float]
    estimator_seconds: float
    config_hash: str = ""


@dataclass
class Config:
    normalisation: str = "behaviour"
    pooling: str = "pair"
    strata: str = "kind"
    fallback: str = "none"
    alpha: float = 0.1
    fraction: float = 0.2
    minimum: int = 3
    calibration_share: float = 0.2  # of the full replay's steps, at most, for the sample
    budget: float = math.inf
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.normalisation}/{self.pooling}/{self.strata}/{self.fallback}"


def _timed(fn, repeat: int = 3, floor: float = 1.0):
    """(result, seconds): the fastest of ``repeat`` runs when a run takes under ``floor``
    seconds (the demo's units take milliseconds, where one timing is mostly noise)."""
    started = time.perf_counter()
    result = fn()
    best = time.perf_counter() - started
    for _ in range(repeat - 1 if best < floor else 0):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return result, best


def prepare(plan, behaviours_fn, work: Path, estimator: str) -> Prepared:
    folder = work / f"{plan.model}-{plan.version}"
    version = record_version(plan, folder)
    task, behaviours = plan.scenario.task(), behaviours_fn()
    estimate, estimator_seconds = _timed(
        lambda: attribute(version, folder, task, behaviours, estimator))
    exact, seconds = [], []
    for k in range(len(version.stages)):
        (row, _), spent = _timed(lambda k=k: unit_effects(version, folder, task, behaviours, k))
        seconds.append(spent)
        exact.append(row)
    table = EffectTable(version.key, [s.id for s in version.stages],
                        [s.kind for s in version.stages], [b.name for b in behaviours],
                        [b.direction for b in behaviours], np.asarray(estimate.effects),
                        [s.steps for s in version.stages],
                        {s.id: {t for d in s.datasets for t in d.tags} for s in version.stages})
    return Prepared(version.key, version.model, table, np.array(exact), seconds,
                    estimator_seconds, estimate.config_hash)


def audits(quick: bool) -> dict[str, list[tuple]]:
    found = {"demo": [(plan, digits.behaviours) for plan in plans.digits_versions()]
             + [(plan, toxicity.behaviours) for plan in plans.toxicity_versions()]}
    for scenario in scenarios(long=not quick):
        found[scenario.name] = [(scenario.plan, scenario.behaviours)]
    return found


def _fresh(p: Prepared) -> EffectTable:
    t = p.table
    return EffectTable(t.key, t.stage_ids, t.stage_kinds, t.behaviours, t.directions,
                       t.estimate, t.steps, t.tags)


def _exact_table(p: Prepared) -> EffectTable:
    table = _fresh(p)
    for k, row in enumerate(p.exact):
        table.set_exact(k, row)
    table.apply_band(None, None)
    return table


def _pairs(prepared: list[Prepared]):
    """(current, previous) per version: the previous version of the same model in the audit."""
    last: dict[str, Prepared] = {}
    for p in prepared:
        yield p, last.get(p.model)
        last[p.model] = p


def full_replay(prepared: list[Prepared], policy) -> dict:
    tables = {p.key: _exact_table(p) for p in prepared}
    out = {}
    for p, prev in _pairs(prepared):
        result = certify(tables[p.key], tables[prev.key] if prev else None, policy,
                         ScoreContext(p.key, "replay", "exact", None), _no_replay, budget=0,
                         today=TODAY, fidelity_passed=True)
        out[p.key] = result
    return out


def _no_replay(units):
    raise AssertionError(f"full replay asked for {units}")


@dataclass
class Certified:
    results: dict = field(default_factory=dict)
    replayed: set = field(default_factory=set)
    sampled: set = field(default_factory=set)
    coverage: dict = field(default_factory=dict)  # stratum -> (covered, total)
    infinite: int = 0
    calibration: object = None


def calibrated(prepared: list[Prepared], config: Config, ideal: bool = False):
    """(tables with the sampled units exact and every band applied, the sample, the
    calibration): the state the certify loop starts from. ``ideal``: the bands calibrated on
    every unit of the audit at no cost, and only the free units exact (no scheme can have
    better-informed bands: the in-sample quantile over every residual there is)."""
    tables = {p.key: _fresh(p) for p in prepared}
    exact = {p.key: p.exact for p in prepared}
    units = [u for p in prepared for u in tables[p.key].units()]
    full_steps = sum(u.cost for u in units)
    sample = units if ideal else sample_units(
        units, fraction=config.fraction, minimum=config.minimum, seed=config.seed,
        max_steps=config.calibration_share * full_steps)
    samples = []
    for unit in sample:
        table = tables[unit.version]
        scale = scales(table.estimate, config.normalisation)[unit.stage_index]
        samples.append(UnitSample(unit.version, unit.stage_index, unit.stage_id,
                                  unit.stage_kind, table.estimate[unit.stage_index],
                                  exact[unit.version][unit.stage_index], scale))
    calibration = calibrate(samples, estimator="aa", config_hash="bench", alpha=config.alpha,
                            normalisation=config.normalisation, pooling=config.pooling,
                            strata=config.strata, fallback=config.fallback)
    if ideal:
        sample = [u for u in units if u.cost == 0]
    for unit in sample:
        tables[unit.version].set_exact(unit.stage_index, exact[unit.version][unit.stage_index])
    for table in tables.values():
        table.apply_band(calibration, "bench")
    return tables, sample, calibration


def certified(prepared: list[Prepared], policy, config: Config) -> Certified:
    tables, sample, calibration = calibrated(prepared, config)
    exact = {p.key: p.exact for p in prepared}
    out = Certified(calibration=calibration, replayed={u.key for u in sample},
                    sampled={u.key for u in sample})
    for table in tables.values():
        _coverage(table, exact[table.key], out)

    def replay(chosen):
        out.replayed.update(u.key for u in chosen)
        return {u.key: exact[u.version][u.stage_index] for u in chosen}

    spent = 0
    for p, prev in _pairs(prepared):
        result = certify(tables[p.key], tables[prev.key] if prev else None, policy,
                         ScoreContext(p.key, "aa", "bench", None), replay,
                         budget=config.budget - spent, today=TODAY, fidelity_passed=True)
        spent += result.spent
        out.results[p.key] = result
    return out


class _Asked(Exception):
    pass


def _run_with(prepared, policy, config, extra: set, budget: float = math.inf,
              ideal: bool = False) -> dict:
    """The certify loop's results with the units ``extra`` (and the calibration sample) exact;
    raises _Asked when, with budget left, it asks for any other unit."""
    tables, _, _ = calibrated(prepared, config, ideal)
    for version, k in extra:
        tables[version].set_exact(k, next(p.exact[k] for p in prepared if p.key == version))

    def replay(chosen):
        raise _Asked(chosen)

    return {p.key: certify(tables[p.key], tables[prev.key] if prev else None, policy,
                           ScoreContext(p.key, "aa", "bench", None), replay, budget=budget,
                           today=TODAY, fidelity_passed=True)
            for p, prev in _pairs(prepared)}


def oracle(prepared: list[Prepared], policy, config: Config, sampled: set,
           limit: int = 14, ideal: bool = False) -> dict:
    """The cheapest set of units that, with the calibration sample and its bands, decides every
    row (and confirms every estimated blocking failure) without asking for another replay —
    found by trying every set in order of cost, knowing the exact effects in advance (what no
    scheme can know). Also, per unit of that set, the rows still undecided without it."""
    steps = {u.key: u.cost for p in prepared for u in p.table.units()}
    rest = sorted((k for k in steps if k not in sampled), key=lambda k: (steps[k], k))
    if len(rest) > limit:
        return {"units": None, "needs": {}}
    subsets = sorted((c for n in range(len(rest) + 1)
                      for c in __import__("itertools").combinations(rest, n)),
                     key=lambda c: (sum(steps[k] for k in c), len(c)))
    for chosen in subsets:
        try:
            _run_with(prepared, policy, config, set(chosen), ideal=ideal)
        except _Asked:
            continue
        needs = {}
        for unit in chosen:
            if steps[unit] == 0:
                continue
            results = _run_with(prepared, policy, config, set(chosen) - {unit}, budget=0,
                                ideal=ideal)
            rows = [r for r in results[unit[0]].rows() if r["outcome"] == "indeterminate"
                    and "close:" in (r["reason"] or "")]
            by_rule: dict[str, int] = {}
            for r in rows:
                by_rule[r["rule_id"]] = by_rule.get(r["rule_id"], 0) + 1
            needs[unit] = by_rule
        return {"units": set(chosen) | sampled, "needs": needs}
    return {"units": None, "needs": {}}


def _coverage(table: EffectTable, exact: np.ndarray, out: Certified) -> None:
    for k, kind in enumerate(table.stage_kinds):
        if k in table.exact:
            continue
        finite = np.isfinite(table.hi[k] - table.lo[k])
        out.infinite += int(np.sum(~finite))
        inside = ((table.lo[k] <= exact[k] + 1e-12) & (exact[k] <= table.hi[k] + 1e-12))[finite]
        for key in (kind, "*"):
            covered, total = out.coverage.get(key, (0, 0))
            out.coverage[key] = (covered + int(inside.sum()), total + len(inside))


def compare(prepared, truth: dict, mine: Certified) -> dict:
    rows = agree = verdicts = 0
    counts = {"estimate": 0, "replay": 0, "INDETERMINATE": 0}
    for p in prepared:
        want = {(r["rule_id"], r["behaviour"], r["stage_id"]): r["outcome"]
                for r in truth[p.key].rows()}
        got = mine.results[p.key].rows()
        for r in got:
            rows += 1
            agree += want.get((r["rule_id"], r["behaviour"], r["stage_id"])) == r["outcome"]
            if r["outcome"] == "indeterminate":
                counts["INDETERMINATE"] += 1
            elif (r["evidence"] or "").startswith("estimate"):
                counts["estimate"] += 1
            else:
                counts["replay"] += 1
        verdicts += _verdict(truth[p.key].rows()) == _verdict(got)
    return {"rows": rows, "agree": agree, "verdicts_equal": verdicts, "versions": len(prepared),
            **counts}


def _verdict(rows) -> str:
    import pyarrow as pa

    from auditor.policy.outcomes import RESULT_SCHEMA, verdict_of

    return verdict_of(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA))


def costs(prepared: list[Prepared], mine: Certified, best: dict, ideal: dict) -> dict:
    seconds = {(p.key, k): s for p in prepared for k, s in enumerate(p.unit_seconds)}
    steps = {u.key: u.cost for p in prepared for u in p.table.units()}
    stage = {u.key: u.stage_id for p in prepared for u in p.table.units()}
    full_s, full_steps = sum(seconds.values()), sum(steps.values())
    estimator_s = sum(p.estimator_seconds for p in prepared)

    def ratio(units):
        return (estimator_s + sum(seconds[k] for k in units)) / full_s

    def steps_ratio(units):
        return sum(steps[k] for k in units) / max(full_steps, 1)

    out = {"ratio": ratio(mine.replayed), "steps_ratio": steps_ratio(mine.replayed),
           "calibration_ratio": ratio(mine.sampled) - estimator_s / full_s,
           "units": len(mine.replayed), "all_units": len(seconds), "full_seconds": full_s,
           "full_steps": full_steps, "estimator_seconds": estimator_s,
           "replayed": sorted(f"{v}:{stage[(v, k)]}" for v, k in mine.replayed),
           "oracle_ratio": None, "oracle_steps_ratio": None, "oracle": None, "needs": {}}
    if best["units"] is not None:
        out.update(oracle_ratio=ratio(best["units"]), oracle_steps_ratio=steps_ratio(
            best["units"]), oracle=sorted(f"{v}:{stage[(v, k)]}" for v, k in best["units"]))
        out["needs"] = {f"{v}:{stage[(v, k)]} ({steps[(v, k)]} steps)": rules
                        for (v, k), rules in best["needs"].items()}
    out["ideal_ratio"] = out["ideal_steps_ratio"] = None
    if ideal["units"] is not None:
        out.update(ideal_ratio=ratio(ideal["units"]),
                   ideal_steps_ratio=steps_ratio(ideal["units"]))
        out["ideal_needs"] = {f"{v}:{stage[(v, k)]} ({steps[(v, k)]} steps)": rules
                              for (v, k), rules in ideal["needs"].items()}
    return out


def run_audit(name: str, prepared: list[Prepared], config: Config, policies) -> dict:
    out = {"audit": name, "config": config.label, "policies": {}}
    for label, policy in policies.items():
        truth = full_replay(prepared, policy)
        mine = certified(prepared, policy, config)
        best = oracle(prepared, policy, config, mine.sampled)
        free = {u.key for p in prepared for u in p.table.units() if u.cost == 0}
        ideal = oracle(prepared, policy, config, free, ideal=True)
        out["policies"][label] = {**compare(prepared, truth, mine),
                                  **costs(prepared, mine, best, ideal)}
        out["coverage"] = {k: list(v) for k, v in mine.coverage.items()}
        out["infinite"] = mine.infinite
        cal = mine.calibration
        out["calibration"] = {"units": len(cal.units), "q": cal.q, "n": cal.n,
                              "loo": cal.coverage}
    return out


def print_result(result: dict) -> None:
    cover = result["coverage"]
    pooled = cover.get("*", [0, 0])
    per_kind = ", ".join(f"{k} {c / t:.0%} ({t})" for k, (c, t) in sorted(cover.items())
                         if k != "*" and t)
    print(f"\n## {result['audit']}  [{result['config']}]  calibration units "
          f"{result['calibration']['units']}, q {_fmt_q(result['calibration']['q'])}")
    print(f"coverage pooled {_pct(pooled)} of {pooled[1]} estimated rows with a finite band "
          f"({result['infinite']} more with an infinite band); {per_kind}")
    for label, row in result["policies"].items():
        print(f"{label:<8} agree {row['agree']}/{row['rows']} "
              f"({row['agree'] / max(row['rows'], 1):.1%}), verdicts equal "
              f"{row['verdicts_equal']}/{row['versions']}; decided by estimate "
              f"{row['estimate']}, by replay {row['replay']}, INDETERMINATE "
              f"{row['INDETERMINATE']}; units replayed {row['units']}/{row['all_units']}; "
              f"cost {row['ratio']:.2f} (steps {row['steps_ratio']:.2f}; calibration "
              f"{row['calibration_ratio']:.2f}) of full replay ({row['full_seconds']:.1f}s, "
              f"{row['full_steps']} steps; estimator {row['estimator_seconds']:.2f}s); "
              f"oracle {_ratio(row['oracle_ratio'])} (steps "
              f"{_ratio(row['oracle_steps_ratio'])}); ideal-band oracle "
              f"{_ratio(row['ideal_ratio'])} (steps {_ratio(row['ideal_steps_ratio'])})")
        print(f"         replayed: {', '.join(row['replayed'])}")
        for unit, rules in row.get("ideal_needs", {}).items():
            listed = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
            print(f"         ideal-band oracle needs {unit}: rows undecided without it: "
                  f"{listed or 'none (confirms a failure)'}")
        for unit, rules in row["needs"].items():
            listed = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
            print(f"         oracle needs {unit}: rows undecided without it: "
                  f"{listed or 'none (confirms a failure)'}")


def _ratio(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _pct(pair) -> str:
    return f"{pair[0] / pair[1]:.1%}" if pair[1] else "n/a"


def _fmt_q(q: dict) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in sorted(q.items()))


def summary(results: list[dict]) -> None:
    covered = sum(r["coverage"].get("*", [0, 0])[0] for r in results)
    total = sum(r["coverage"].get("*", [0, 0])[1] for r in results)
    for label in POLICIES:
        rows = sum(r["policies"][label]["rows"] for r in results)
        agree = sum(r["policies"][label]["agree"] for r in results)
        print(f"ALL {label:<8} agree {agree}/{rows} ({agree / max(rows, 1):.1%})")
    infinite = sum(r["infinite"] for r in results)
    print(f"ALL coverage pooled {covered}/{total} ({covered / max(total, 1):.1%}) of estimated "
          f"rows with a finite band; {infinite} with an infinite band")
    for label in POLICIES:
        counts = {k: sum(r["policies"][label][k] for r in results)
                  for k in ("estimate", "replay", "INDETERMINATE")}
        print(f"ALL {label:<8} decided by estimate {counts['estimate']}, by replay "
              f"{counts['replay']}, INDETERMINATE {counts['INDETERMINATE']}")
    for r in results:
        if r["audit"] in ("demo", "digits-long"):
            for label in POLICIES:
                row = r["policies"][label]
                print(f"cost {r['audit']} ({label}): {row['ratio']:.2f} of full replay (steps "
                      f"{row['steps_ratio']:.2f}); oracle {_ratio(row['oracle_ratio'])} "
                      f"(steps {_ratio(row['oracle_steps_ratio'])}); ideal-band oracle "
                      f"{_ratio(row['ideal_ratio'])} (steps "
                      f"{_ratio(row['ideal_steps_ratio'])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip digits-long")
    parser.add_argument("--only", nargs="*", help="audit names")
    parser.add_argument("--grid", action="store_true", help="every band form")
    parser.add_argument("--estimator", default="aa")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, help="folder for recorded runs (reused)")
    parser.add_argument("--write-fallback", action="store_true",
                        help="write the estimator's benchmark bands (per stage kind) into "
                             "auditor/certify/benchmark_bands.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warm_up()
    policies = {label: load_policy(path) for label, path in POLICIES.items()}
    configs = [Config()]
    if args.grid:
        configs = [Config(n, "pair", "kind", f) for n in ("absolute", "relative", "behaviour")
                   for f in ("none", "pooled")]
        configs += [Config("relative", "pair", "none"), Config("relative", "unit", "kind")]
    results, per_audit = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name, members in audits(args.quick).items():
            if args.only and name not in args.only:
                continue
            prepared = [prepare(plan, fn, work / name, args.estimator) for plan, fn in members]
            per_audit[name] = prepared
            for config in configs:
                results.append(run_audit(name, prepared, config, policies))
                print_result(results[-1])
    for config in configs:
        print(f"\n# {config.label}")
        summary([r for r in results if r["config"] == config.label])
    print()
    for line in fallback(per_audit, args.estimator, Config().alpha, args.write_fallback):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
