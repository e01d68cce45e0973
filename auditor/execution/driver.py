"""The driver: run a plan on an executor and write each item's rows — only here, in ONE
transaction per item — then summarise the audit from the store."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from auditor.execution.items import RUN_KIND, WorkItem
from auditor.execution.outcome import Executor
from auditor.execution.planner import Plan, with_lineage
from auditor.execution.progress import AuditProgress
from auditor.execution.worker import run_item

if TYPE_CHECKING:
    from auditor.store import Store

AUDIT_RUN_KIND = "audit"


@dataclass(frozen=True)
class Blame:
    version: str
    estimator: str
    behaviour: str
    stage_id: str | None  # None: no stage adds to this behaviour's harm
    share: float | None
    effect: float | None


@dataclass
class AuditSummary:
    planned: int
    skipped: int
    done: int
    failed: int
    run_ids: list[str] = field(default_factory=list)
    audit_run_id: str | None = None
    failures: dict[str, str] = field(default_factory=dict)  # "label (hash)" -> error
    blame: list[Blame] = field(default_factory=list)
    # certified gates of the audit's versions: (version, estimator, GateResult, CertifySummary)
    certified: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    @property
    def top_blamed(self) -> dict[str, dict[str, str | None]]:
        """Per version, the top-blamed stage per behaviour (first estimator of the audit)."""
        table: dict[str, dict[str, str | None]] = {}
        first = self.blame[0].estimator if self.blame else None
        for row in self.blame:
            if row.estimator == first:
                table.setdefault(row.version, {})[row.behaviour] = row.stage_id
        return table


def execute(plan: Plan, executor: Executor, store: Store, *,
            progress: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """Run the plan's items; returns (item hash -> run id, "label (hash)" -> error)."""
    written, failures = {}, {}
    with AuditProgress(len(plan.todo), enabled=progress) as bar:
        for outcome in executor.map(run_item, with_lineage(plan.todo, store)):
            if outcome.ok:
                written[outcome.item.item_hash] = store.record_run(
                    RUN_KIND, outcome.item.run_config(), scores=outcome.rows)
            else:
                failures[f"{outcome.item.label} ({outcome.item.item_hash[:8]})"] = outcome.error or "failed"
                _record_failure(store, outcome.item)
            bar.advance(outcome)
    return written, failures


def _record_failure(store: Store, item: WorkItem) -> None:
    run_id = store.start_run(RUN_KIND, item.run_config())
    store.finish_run(run_id, "failed")


def summarise(plan: Plan, store: Store, written: dict[str, str], failures: dict[str, str],
              audit_config: dict[str, Any]) -> AuditSummary:
    runs = {**plan.stored_runs, **written}
    audit_run = store.record_run(AUDIT_RUN_KIND, {**audit_config, "item_runs": runs,
                                                  "failed": sorted(failures)})
    items = plan.skipped + plan.todo
    return AuditSummary(planned=plan.planned, skipped=len(plan.skipped), done=len(written),
                        failed=len(failures), run_ids=[runs[i.item_hash] for i in items
                                                       if i.item_hash in runs],
                        audit_run_id=audit_run, failures=failures,
                        blame=blame_rows(store, [i for i in items if i.item_hash in runs], runs))


def blame_rows(store: Store, items: list[WorkItem], runs: dict[str, str]) -> list[Blame]:
    """The top-blamed stage of each item's behaviours, from one read of their score rows."""
    run_ids = [runs[item.item_hash] for item in items]
    if not run_ids:
        return []
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in store.query("SELECT * FROM stage_scores WHERE list_contains(?, run_id) "
                           "ORDER BY run_id, stage_index", [run_ids]):
        grouped.setdefault(row["run_id"], {}).setdefault(row["behaviour"], []).append(row)
    return [_top(item, rows) for item, run_id in zip(items, run_ids)
            for rows in grouped.get(run_id, {}).values()]


def _top(item: WorkItem, rows: list[dict[str, Any]]) -> Blame:
    """The stage with the largest share of harm; effect NaN and no stage when an effect of the
    behaviour is NaN or infinite (nothing can be blamed on numbers that are not numbers)."""
    if any(r["effect"] is None or not math.isfinite(r["effect"]) for r in rows):
        return Blame(item.key, item.estimator, rows[0]["behaviour"], None, None, math.nan)
    scored = [r for r in rows if r["share"] is not None and r["share"] == r["share"]]
    if not scored:
        return Blame(item.key, item.estimator, rows[0]["behaviour"], None, None, None)
    best = max(scored, key=lambda r: r["share"])
    return Blame(item.key, item.estimator, best["behaviour"], best["stage_id"], best["share"],
                 best["effect"])
