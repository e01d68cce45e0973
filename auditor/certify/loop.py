"""The certify loop: estimate → decide on intervals → replay what a close row depends on →
re-decide, within a budget of training steps (docs/certify.md).

A row is decided when its metric's whole interval lies on one side of the threshold. A close
row is resolved by replaying units, cheapest first: for each close row the cheapest unit that
narrows one of its intervals (a free unit — the last stage — first), then the row is re-decided,
so an expensive (early-stage) unit is replayed only for rows still close once every cheaper unit
they depend on is exact.
Past the budget the row stays INDETERMINATE and its reason says what replay it needed. With
``confirm_fail`` a blocking failure decided by an estimate is confirmed by replaying the stage
it blames, budget permitting. Decisions go through the policy engine; the replays through the
``replay`` callback (the executors in production, cached effects in the benchmark).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa

from auditor.certify.table import EffectTable, Unit, fmt_steps
from auditor.policy.decide import uses_behaviour
from auditor.policy.evaluate import Inputs, evaluate_rules, with_bounds
from auditor.policy.intervals import point_metrics
from auditor.policy.load import LoadedPolicy
from auditor.policy.metrics import ScoreContext

# replay these units; returns each one's exact effects (Q,) by unit key
ReplayFn = Callable[[list[Unit]], dict[tuple[str, int], np.ndarray]]


@dataclass
class CertifyOutcome:
    results: pa.Table  # RESULT_SCHEMA rows
    replayed: list[Unit] = field(default_factory=list)  # by the loop (not the calibration)
    spent: int = 0  # training steps the loop replayed
    rounds: int = 0

    def rows(self) -> list[dict]:
        return self.results.to_pylist()


def inputs_of(current: EffectTable, previous: EffectTable | None, context: ScoreContext,
              fidelity_passed: bool) -> Inputs:
    """The policy engine's inputs from tables held in memory (rows behaviour-major, stages in
    order, as auditor.policy.metrics orders them)."""
    K, Q = current.estimate.shape
    behaviour_code = np.repeat(np.arange(Q), K)
    stage = np.tile(np.arange(K), Q)
    effects, evidence = current.effects, current.evidence()
    m = {"behaviour_code": behaviour_code, "stage_id_code": stage,
         "stage_index": stage.astype(float),
         "stage_id": np.array(current.stage_ids, dtype=object)[stage],
         "stage_kind": np.array(current.stage_kinds, dtype=object)[stage],
         "behaviour": np.array(current.behaviours, dtype=object)[behaviour_code],
         "direction": np.array(current.directions, dtype=object)[behaviour_code],
         "effect": effects[stage, behaviour_code],
         "lo": current.lo[stage, behaviour_code], "hi": current.hi[stage, behaviour_code],
         "evidence": evidence[stage, behaviour_code],
         "calibration_id": np.array(current.calibration_ids(), dtype=object)[stage]}
    _previous_columns(m, current, previous, stage, behaviour_code)
    point_metrics(m, has_previous=previous is not None)
    with_bounds(m)
    names = {"behaviour": np.array(current.behaviours, dtype=object),
             "stage_id": np.array(current.stage_ids, dtype=object)}
    context = ScoreContext(context.key, context.estimator, context.config_hash,
                           previous.key.split("@", 1)[1] if previous else None, context.runs,
                           fidelity_passed=fidelity_passed)
    notes = {**(previous.notes if previous is not None else {}), **current.notes}
    return Inputs(context, m, names, current.tags, dict(zip(current.behaviours,
                                                            current.directions)),
                  np.array(current.stage_kinds, dtype=object), notes)


def _previous_columns(m, current, previous, stage, behaviour_code) -> None:
    n = len(stage)
    m["prev_effect"], m["prev_lo"], m["prev_hi"] = (np.full(n, np.nan) for _ in range(3))
    m["prev_scored"] = np.zeros(n, dtype=bool)
    if previous is None:
        return
    effects = previous.effects
    bs = {b: q for q, b in enumerate(previous.behaviours)}
    ks = {s: k for k, s in enumerate(previous.stage_ids)}
    for i in range(n):
        q = bs.get(current.behaviours[behaviour_code[i]])
        m["prev_scored"][i] = q is not None
        k = ks.get(current.stage_ids[stage[i]])
        if q is None or k is None:
            continue
        m["prev_effect"][i] = effects[k, q]
        lo, hi = previous.lo[k, q], previous.hi[k, q]
        m["prev_lo"][i] = effects[k, q] if np.isnan(lo) else lo
        m["prev_hi"][i] = effects[k, q] if np.isnan(hi) else hi


def certify(current: EffectTable, previous: EffectTable | None, loaded: LoadedPolicy,
            context: ScoreContext, replay: ReplayFn, *, budget: float,
            confirm_fail: bool = True, today: date | None = None,
            fidelity_passed: bool = False, can_replay: bool = True) -> CertifyOutcome:
    """Decide ``loaded`` on ``current``, replaying units within ``budget`` training steps."""
    today = today or date.today()
    tables = {current.key: current, **({previous.key: previous} if previous else {})}
    outcome = CertifyOutcome(pa.table({}))
    tried: set[tuple[str, int]] = set()  # a unit that ran and gave nothing is not asked twice
    while True:
        outcome.rounds += 1
        results = evaluate_rules(loaded, inputs_of(current, previous, context, fidelity_passed),
                                 today)
        rows = results.to_pylist()
        wanted = _close_units(rows, loaded, tables, current, previous)
        if not wanted and confirm_fail:
            wanted = _confirm_units(rows, loaded, tables, current)
        wanted = [u for u in wanted if can_replay and u.key not in tried]
        chosen, left = _within(wanted, budget - outcome.spent)
        if not chosen:
            outcome.results = _explain(results, wanted, budget - outcome.spent,
                                       can_replay and not (tried and not wanted))
            return outcome
        tried.update(u.key for u in chosen)
        for key, row in replay(chosen).items():
            tables[key[0]].set_exact(key[1], row)
        outcome.replayed.extend(chosen)
        outcome.spent += sum(u.cost for u in chosen)


def _close_units(rows, loaded, tables, current, previous) -> list[Unit]:
    rules = {rule.id: rule for rule in loaded.policy.rules}
    wanted: dict[tuple[str, int], Unit] = {}
    for row in rows:
        if not (row["reason"] or "").startswith("close:"):
            continue
        rule = rules[row["rule_id"]]
        candidates = _row_units(rule, row, current, previous)
        best = _best(candidates, tables)
        if best is not None:
            wanted.setdefault(best.key, best)
    return sorted(wanted.values(), key=lambda u: (u.cost, u.version, u.stage_index))


def _row_units(rule, row, current: EffectTable, previous: EffectTable | None) -> list[Unit]:
    units = {u.stage_id: u for u in current.units()}
    own = units.get(row["stage_id"])
    if uses_behaviour(rule):
        found = [u for u in units.values() if u.stage_index not in current.exact]
    else:
        found = [own] if own and own.stage_index not in current.exact else []
    if rule.metric == "delta_vs_previous" and previous is not None:
        theirs = {u.stage_id: u for u in previous.units()}
        other = theirs.get(row["stage_id"])
        if other is not None and other.stage_index not in previous.exact:
            found.append(other)
    return found


def _best(candidates: Iterable[Unit], tables: dict[str, EffectTable]) -> Unit | None:
    """The cheapest unit that narrows the row (free units first; among equal costs the one
    with the widest band). Cheap units go first and the row is re-decided before a dearer one
    is considered: removing a late stage retrains little (the last stage nothing), removing an
    early one retrains almost everything, and a row often needs only the late stages exact."""
    scored = [(u.cost, -tables[u.version].width(u.stage_index), u.version, u.stage_index, u)
              for u in candidates if tables[u.version].width(u.stage_index) > 0]
    if not scored:
        return None
    return min(scored, key=lambda t: t[:4])[4]


def _confirm_units(rows, loaded, tables, current: EffectTable) -> list[Unit]:
    """The stage each blocking failure decided by an estimate blames."""
    units = {u.stage_id: u for u in current.units()}
    wanted = {}
    for row in rows:
        if row["severity"] == "block" and row["outcome"] == "fail" and \
                row["evidence"] != "exact" and row["stage_id"] in units:
            unit = units[row["stage_id"]]
            if unit.stage_index not in current.exact:
                wanted.setdefault(unit.key, unit)
    return sorted(wanted.values(), key=lambda u: u.cost)


def _within(units: list[Unit], left: float) -> tuple[list[Unit], list[Unit]]:
    chosen, rest, spent = [], [], 0
    for unit in units:
        if spent + unit.cost <= left:
            chosen.append(unit)
            spent += unit.cost
        else:
            rest.append(unit)
    return chosen, rest


def _explain(results: pa.Table, wanted: list[Unit], left: float, can_replay: bool) -> pa.Table:
    """Close rows left undecided: say which replay they needed and why it did not run."""
    if not wanted and can_replay:
        return results
    cheapest = min(wanted, key=lambda u: u.cost) if wanted else None
    if not can_replay:
        note = "the units it needs cannot be replayed (no batch log, no task, or they failed)"
    else:
        note = (f"replay of {cheapest.stage_id} needs {fmt_steps(cheapest.cost)} steps, budget "
                f"left {fmt_steps(max(left, 0))}")
    reasons = [f"{r}; {note}" if (r or "").startswith("close:") else r
               for r in results.column("reason").to_pylist()]
    index = results.schema.get_field_index("reason")
    return results.set_column(index, "reason", pa.array(reasons, pa.string()))
