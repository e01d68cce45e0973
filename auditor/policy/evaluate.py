"""Evaluate a policy on one version: metrics from the store (SQL), rules as numpy masks,
results and verdict written back in ONE transaction, returned as data.

Missing or stale data never raises: a behaviour not scored, scores only under another estimator
configuration, an unmet estimator requirement or a NaN or infinite effect make the row INDETERMINATE with
the reason.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from auditor.policy.decide import (
    METRIC_COLUMN,
    UNCALIBRATED_NOTE,
    behaviour_calibrations,
    decide,
    worst_evidence,
)
from auditor.policy.intervals import add_bounds
from auditor.policy.load import LoadedPolicy
from auditor.policy.metrics import (
    CODED,
    ScoreContext,
    as_columns,
    lineage_kinds,
    metric_table,
    score_context,
    scored_elsewhere,
    stage_tags,
)
from auditor.policy.model import Policy, Requirement, Rule, Waiver
from auditor.policy.outcomes import RESULT_SCHEMA, GateResult, verdict_of
from auditor.policy.selectors import selected_behaviours, stage_mask
from auditor.store import Store

COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
FIRED = {"block": "fail", "warn": "warn", "info": "info"}
Chunk = dict[str, np.ndarray]


@dataclass(frozen=True)
class Inputs:
    """Everything rules are evaluated on, read from the store."""

    context: ScoreContext
    columns: dict[str, np.ndarray]  # metric table rows (see auditor.policy.metrics)
    names: dict[str, np.ndarray]  # distinct behaviours / stage ids, indexed by the row codes
    tags: dict[str, set[str]]  # dataset tags per stage id
    directions: dict[str, str]  # scored behaviour -> harm | benefit
    kinds: np.ndarray  # kind of each distinct stage id (names["stage_id"])
    # calibration id -> replayed units, or the note of a band not calibrated on this model
    replays: dict[str, int | str] = field(default_factory=dict)


def read_inputs(store: Store, key: str, estimator: str | None = None,
                named: list[str] | None = None) -> Inputs:
    """Metrics of ``key``; for the ``named`` behaviours left unscored, where they were scored."""
    context = score_context(store, key, estimator)
    columns = as_columns(metric_table(store, context))
    names = {name: columns.pop(f"{name}_names") for name in CODED}
    directions = dict(zip(names["behaviour"].tolist(),
                          _first_per_code(columns, "behaviour", "direction")))
    missing = sorted(set(named or []) - set(directions))
    context = replace(context, elsewhere=scored_elsewhere(store, context, missing))
    kinds = _stage_kinds(columns, names["stage_id"], lineage_kinds(store, key))
    with_bounds(columns)
    ids = sorted({c for c in columns["calibration_id"].tolist() if c})
    replays = {row["calibration_id"]: row["n_units"] if row["source"] == "replay"
               else UNCALIBRATED_NOTE for row in store.calibrations(ids)} if ids else {}
    return Inputs(context, columns, names, stage_tags(store, key), directions, kinds, replays)


def with_bounds(columns: dict[str, np.ndarray]) -> None:
    """Add the metrics' interval bounds and the weakest evidence of each behaviour."""
    add_bounds(columns)
    columns["evidence_behaviour"] = worst_evidence(columns["behaviour_code"],
                                                   columns["evidence"])
    columns["calibration_behaviour"] = behaviour_calibrations(columns["behaviour_code"],
                                                              columns["calibration_id"])


def _first_per_code(columns: dict[str, np.ndarray], coded: str, column: str) -> list:
    values = np.empty(int(columns[f"{coded}_code"].max()) + 1 if len(columns[column]) else 0,
                      dtype=object)
    values[columns[f"{coded}_code"]] = columns[column]
    return values.tolist()


def named_behaviours(policy: Policy) -> list[str]:
    return sorted({name for rule in policy.rules for name in rule.behaviours or []})


def gate(store: Store, key: str, loaded: LoadedPolicy, *, estimator: str | None = None,
         allow_indeterminate: bool = False, today: date | None = None,
         write: bool = True) -> GateResult:
    """Evaluate ``loaded`` on version ``key``; with ``write`` the results and the verdict are
    recorded as one run in one transaction."""
    today = today or datetime.now(timezone.utc).date()
    inputs = read_inputs(store, key, estimator or loaded.policy.estimator,
                         named_behaviours(loaded.policy))
    results = evaluate_rules(loaded, inputs, today)
    verdict = verdict_of(results)
    run_id = record_results(store, loaded, inputs.context, results, verdict, today) \
        if write else None
    return GateResult(key, loaded.id, loaded.policy.version, loaded.hash, str(loaded.path),
                      inputs.context.estimator, inputs.context.config_hash,
                      inputs.context.previous, verdict, results, run_id,
                      expired_waivers(loaded.policy, key, today), allow_indeterminate,
                      today.isoformat())


def record_results(store: Store, loaded: LoadedPolicy, context: ScoreContext,
                   results: pa.Table, verdict: str, today: date,
                   extra: dict[str, Any] | None = None) -> str:
    """Record a gate's results and verdict as one policy run, in one transaction."""
    config = {**(extra or {}), "policy_id": loaded.id, "policy_version": loaded.policy.version,
              "policy_hash": loaded.hash, "version": context.key,
              "estimator": context.estimator, "config_hash": context.config_hash,
              "previous": context.previous, "evaluated_on": today.isoformat(),
              "policy_text": loaded.text}
    verdict_row = {"model": context.model, "version": context.version, "policy_id": loaded.id,
                   "policy_hash": loaded.hash, "verdict": verdict}
    with store.transaction():
        return store.record_run("policy", config, policy_results=results,
                                verdicts=[verdict_row])


def evaluate_rules(loaded: LoadedPolicy, inputs: Inputs, today: date) -> pa.Table:
    """Pure: the result rows of every rule, in rule order."""
    chunks = [chunk for rule in loaded.policy.rules
              for chunk in _rule_chunks(rule, loaded.policy, inputs, today)]
    columns = {name: np.concatenate([c[name] for c in chunks]) for name in _CHUNK_COLUMNS}
    constant = {"model": inputs.context.model, "version": inputs.context.version,
                "policy_id": loaded.id, "policy_version": loaded.policy.version,
                "policy_hash": loaded.hash, "estimator": inputs.context.estimator,
                "config_hash": inputs.context.config_hash}
    n = len(columns["rule_id"])
    arrays = {name: pa.array(np.full(n, value, dtype=object), pa.string())
              for name, value in constant.items()}
    for name, values in columns.items():
        arrays[name] = _to_arrow(name, values)
    return pa.table([arrays[f.name] for f in RESULT_SCHEMA], schema=RESULT_SCHEMA)


_CHUNK_COLUMNS = ("rule_id", "severity", "behaviour", "stage_id", "metric", "comparator",
                  "threshold", "observed", "outcome", "reason", "waiver_owner", "waiver_reason",
                  "waiver_expiry", "evidence", "observed_lo", "observed_hi")


def _to_arrow(name: str, values: np.ndarray) -> pa.Array:
    kind = RESULT_SCHEMA.field(name).type
    if kind == pa.float64():
        floats = values.astype(float)
        return pa.array(floats, kind, mask=np.isnan(floats))
    return pa.array(values, kind, from_pandas=True)


def _rule_chunks(rule: Rule, policy: Policy, inputs: Inputs, today: date) -> list[Chunk]:
    problem = requirement_problem(policy.requirement(rule), inputs.context)
    if problem:
        return [_single(rule, None, "indeterminate", problem)]
    directions = inputs.directions
    names = selected_behaviours(rule, directions)
    if not names:
        return [_single(rule, None, "indeterminate", f"no {rule.direction} behaviour is scored "
                        f"for {inputs.context.key} {_under(inputs.context)}")]
    chunks = [_single(rule, name, "indeterminate", unscored_reason(name, inputs.context))
              for name in names if name not in directions]
    chunks.extend(_stage_rows(rule, policy, inputs, [n for n in names if n in directions],
                              today))
    return chunks


def _under(context: ScoreContext) -> str:
    if context.config_hash is not None:
        return f"under {context.estimator}/{context.config_hash}"
    if context.estimator is None:
        return "(no scores at all)"
    found = f"; scores exist under {', '.join(context.configs)}" if context.configs else ""
    return f"(no scores from estimator {context.estimator!r}{found})"


def unscored_reason(name: str, context: ScoreContext) -> str:
    reason = f"behaviour {name!r} is not scored for {context.key} {_under(context)}"
    others = context.elsewhere.get(name)
    return f"{reason}; scored only under another configuration: {', '.join(others)}" \
        if others else reason


def requirement_problem(requirement: Requirement | None, context: ScoreContext) -> str | None:
    if requirement is None or context.estimator is None:
        return None
    if requirement.estimators and context.estimator not in requirement.estimators:
        return (f"scores come from estimator {context.estimator!r}; the rule accepts "
                f"{', '.join(requirement.estimators)}")
    if requirement.fidelity == "passed" and not context.fidelity_passed:
        return (f"no passed replay fidelity check of {context.estimator}/{context.config_hash} "
                f"for {context.key}")
    return None


def _stage_rows(rule: Rule, policy: Policy, inputs: Inputs, names: list[str],
                today: date) -> list[Chunk]:
    """Rows of the selected behaviours x stages, found by integer lookups on the row codes."""
    if not names:
        return []
    m, distinct = inputs.columns, inputs.names
    named = set(names)
    wanted = np.fromiter((b in named for b in distinct["behaviour"].tolist()), dtype=bool,
                         count=len(distinct["behaviour"]))
    stages = stage_mask(rule.stages, distinct["stage_id"], inputs.kinds, inputs.tags)
    rows = wanted[m["behaviour_code"]] & stages[m["stage_id_code"]]
    covered = np.zeros(len(wanted), dtype=bool)
    covered[m["behaviour_code"][rows]] = True
    uncovered = distinct["behaviour"][wanted & ~covered]
    chunks = [_singles(rule, uncovered, "pass", "no stage matches the rule's stage selector")] \
        if len(uncovered) else []
    if rows.any():
        column = METRIC_COLUMN[rule.metric]
        needed = ("behaviour", "stage_id", column, f"{column}_lo", f"{column}_hi",
                  "total_harm", "total_harm_lo", "total_harm_hi", "behaviour_nan", "evidence",
                  "evidence_behaviour", "calibration_id", "calibration_behaviour")
        chunk = _decide(rule, {name: m[name][rows] for name in needed},
                        inputs.context.previous, inputs.replays)
        chunks.append(apply_waivers(chunk, rule, policy.waivers, inputs.context.key, today))
    return chunks


def _stage_kinds(columns: dict[str, np.ndarray], stage_ids: np.ndarray,
                 recorded: dict[str, str]) -> np.ndarray:
    """The kind of each distinct stage id: the score rows', else the lineage's."""
    kinds = np.empty(len(stage_ids), dtype=object)
    kinds[columns["stage_id_code"]] = columns["stage_kind"]
    return np.array([kind if kind is not None else recorded.get(stage)
                     for stage, kind in zip(stage_ids.tolist(), kinds.tolist())], dtype=object)


def _decide(rule: Rule, m: dict[str, np.ndarray], previous: str | None,
            replays: dict[str, int]) -> Chunk:
    outcome, reason, observed, evidence, bounds = decide(rule, m, previous, replays)
    chunk = _chunk(rule, m["behaviour"], m["stage_id"], observed, outcome, reason)
    chunk["evidence"], chunk["observed_lo"], chunk["observed_hi"] = evidence, *bounds
    return chunk


def _single(rule: Rule, behaviour: str | None, outcome: str, reason: str) -> Chunk:
    return _singles(rule, np.array([behaviour], dtype=object), outcome, reason)


def _singles(rule: Rule, behaviours: np.ndarray, outcome: str, reason: str) -> Chunk:
    """One row per behaviour that is about no particular stage."""
    n = len(behaviours)
    return _chunk(rule, behaviours, np.full(n, None, dtype=object), np.full(n, np.nan),
                  np.full(n, outcome, dtype=object), np.full(n, reason, dtype=object))


def _chunk(rule: Rule, behaviour: np.ndarray, stage_id: np.ndarray, observed: np.ndarray,
           outcome: np.ndarray, reason: np.ndarray) -> Chunk:
    n = len(outcome)

    def full(value: Any) -> np.ndarray:
        return np.full(n, value, dtype=object)

    return {"rule_id": full(rule.id), "severity": full(rule.severity), "behaviour": behaviour,
            "stage_id": stage_id, "metric": full(rule.metric),
            "comparator": full(rule.comparator), "threshold": np.full(n, rule.threshold),
            "observed": observed, "outcome": outcome, "reason": reason,
            "waiver_owner": full(None), "waiver_reason": full(None), "waiver_expiry": full(None),
            "evidence": full(None), "observed_lo": np.full(n, np.nan),
            "observed_hi": np.full(n, np.nan)}


def waiver_covers(waiver: Waiver, rule: Rule, key: str) -> bool:
    return waiver.rule == rule.id and waiver.version in (None, key)


def apply_waivers(chunk: Chunk, rule: Rule, waivers: list[Waiver], key: str,
                  today: date) -> Chunk:
    """A waiver turns a fired row of its rule (and version/stage) into ``waived``; an expired
    one does not apply and says so in the reason. Unexpired waivers win over expired ones."""
    mine = sorted((w for w in waivers if waiver_covers(w, rule, key)),
                  key=lambda w: w.expires >= today)  # expired first, so valid ones win
    if not mine:
        return chunk
    fired = np.isin(chunk["outcome"].astype(str), ["fail", "warn", "info"])
    for waiver in mine:
        hit = fired & ((chunk["stage_id"] == waiver.stage) if waiver.stage else True)
        if waiver.expires < today:
            chunk["reason"] = np.where(hit, chunk["reason"] + f"; waiver by {waiver.owner} "
                                       f"expired {waiver.expires.isoformat()}", chunk["reason"])
            continue
        chunk["outcome"] = np.where(hit, "waived", chunk["outcome"]).astype(object)
        for column, value in (("waiver_owner", waiver.owner), ("waiver_reason", waiver.reason),
                              ("waiver_expiry", waiver.expires)):
            chunk[column] = np.where(hit, value, chunk[column]).astype(object)
    return chunk


def expired_waivers(policy: Policy, key: str, today: date) -> tuple[dict[str, Any], ...]:
    return tuple(w.model_dump(mode="json") for w in policy.waivers
                 if w.version in (None, key) and w.expires < today)
