"""Run replay units on an executor and store each as a run of kind ``replay-unit`` (one
transaction per unit, like estimator items): units already stored under the same run config are
reused, so an interrupted replay resumes; the planner's line says what will run and its cost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from auditor.errors import ExecutionError
from auditor.execution.outcome import Executor
from auditor.execution.progress import AuditProgress
from auditor.execution.replay_units import UNIT_RUN_KIND, ReplayUnitItem, run_replay_unit

if TYPE_CHECKING:
    from auditor.store import Store

Say = Callable[[str], None]


def stored_unit_runs(store: Store) -> dict[str, str]:
    rows = store.query("SELECT config_hash, run_id FROM runs WHERE kind = ? AND "
                       "status = 'complete' ORDER BY started_at", [UNIT_RUN_KIND])
    return {row["config_hash"]: row["run_id"] for row in rows}


def plan_line(todo: list[ReplayUnitItem], reused: int) -> str:
    steps = sum(u.cost for u in todo)
    seconds = sum(u.seconds for u in todo)
    timing = f" (~{seconds:.1f} s at the lineage's measured step time)" if seconds else ""
    return (f"replay plan: {len(todo)} unit(s), {steps:,} training steps{timing}; "
            f"{reused} reused from the store")


def run_units(units: list[ReplayUnitItem], executor: Executor, store: Store, *,
              say: Say | None = None, progress: bool = True,
              force: bool = False) -> dict[tuple[str, int], dict[str, float]]:
    """Exact effects {behaviour: effect} of every unit, by (version, stage index)."""
    done = {} if force else stored_unit_runs(store)
    todo = [u for u in units if u.item_hash not in done]
    runs = {u.item_hash: done[u.item_hash] for u in units if u.item_hash in done}
    if say is not None and units:
        say(plan_line(todo, len(units) - len(todo)))
    failures = []
    with AuditProgress(len(todo), enabled=progress) as bar:
        items = (replace(u, version_json=store.lineage_json(u.key)) for u in todo)
        for outcome in executor.map(run_replay_unit, items):
            if outcome.ok:
                runs[outcome.item.item_hash] = store.record_run(
                    UNIT_RUN_KIND, outcome.item.run_config(), scores=outcome.rows)
            else:
                failures.append(f"{outcome.item.label}: {outcome.error}")
                run_id = store.start_run(UNIT_RUN_KIND, outcome.item.run_config())
                store.finish_run(run_id, "failed")
            bar.advance(outcome)
    if failures:
        raise ExecutionError(f"{len(failures)} replay unit(s) failed: {'; '.join(failures)}")
    return {(u.key, u.stage_index): unit_rows(store, runs[u.item_hash]) for u in units}


def unit_rows(store: Store, run_id: str) -> dict[str, float]:
    rows = store.query("SELECT behaviour, effect FROM stage_scores WHERE run_id = ?", [run_id])
    return {row["behaviour"]: (np.nan if row["effect"] is None else row["effect"])
            for row in rows}
