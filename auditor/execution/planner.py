"""Plan an audit: the work items of the selected versions, less those already in the store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from auditor.errors import InputError
from auditor.execution.items import RUN_KIND, WorkItem, make_item
from auditor.execution.spec import AuditSpec
from auditor.task import load_entry_point, vet_task

if TYPE_CHECKING:
    from auditor.store import Store


@dataclass
class Plan:
    todo: list[WorkItem] = field(default_factory=list)
    skipped: list[WorkItem] = field(default_factory=list)
    stored_runs: dict[str, str] = field(default_factory=dict)  # item hash -> its latest run

    @property
    def planned(self) -> int:
        return len(self.todo) + len(self.skipped)


def select_versions(spec: AuditSpec, store: Store, period: str | None = None) -> list[str]:
    """The version keys the spec selects (ids first, then the period's, oldest first)."""
    keys = list(spec.versions.ids)
    period = period or spec.versions.period
    if period:
        for info in store.list_versions(period=period):
            if not spec.versions.models or info.model in spec.versions.models:
                keys.append(info.key)
    if not keys:
        raise InputError(f"no stored versions match the audit (period {period or '-'}, "
                         f"models {', '.join(spec.versions.models) or 'all'})")
    return list(dict.fromkeys(keys))


def stored_item_runs(store: Store) -> dict[str, str]:
    """Item hash -> the latest complete run that stored it."""
    rows = store.query("SELECT config_hash, run_id FROM runs WHERE kind = ? AND "
                       "status = 'complete' ORDER BY started_at", [RUN_KIND])
    return {row["config_hash"]: row["run_id"] for row in rows}


def plan_audit(spec: AuditSpec, store: Store, period: str | None = None, *,
               force: bool = False) -> Plan:
    """The spec's items; those stored under the same run config (lineage, estimator settings,
    task and behaviour code and probe data) are skipped unless ``force``."""
    from auditor.estimators import get_estimator
    from auditor.execution.inputs import inputs_digest

    sources = {info.key: info.source for info in store.list_versions()}
    estimators = {name: get_estimator(name, **spec.estimator_settings.get(name, {})).config_hash
                  for name in spec.estimators}
    done, plan, seen = ({} if force else stored_item_runs(store)), Plan(), set()
    digests: dict[tuple[str, str], str] = {}
    for key in select_versions(spec, store, period):
        version = store.get_version(key)  # a StoreError naming the key when it is not stored
        task = spec.model_factory or version.task
        if not task:
            raise InputError(f"{key} names no training task; set model_factory in the audit spec")
        if not spec.model_factory:  # the lineage chose it: data, not the user's choice
            vet_task(task, spec.allowed_task_modules(), source=f"the lineage of {key}")
        for name, estimator_hash in estimators.items():
            for behaviours in spec.behaviour_sets(version.model):
                if (task, behaviours) not in digests:
                    load_entry_point(behaviours)  # refused here (not called) unless a plain function
                    digests[(task, behaviours)] = inputs_digest(task, behaviours)
                item = make_item(version, sources[key] or ".", task=task, behaviours=behaviours,
                                 estimator=name, estimator_config_hash=estimator_hash,
                                 settings=spec.estimator_settings.get(name, {}),
                                 inputs_digest=digests[(task, behaviours)])
                if item.item_hash not in seen:  # the lineage JSON is fetched when it runs
                    seen.add(item.item_hash)
                    lean = replace(item, version_json="")
                    if item.item_hash in done:
                        plan.skipped.append(lean)
                        plan.stored_runs[item.item_hash] = done[item.item_hash]
                    else:
                        plan.todo.append(lean)
    return plan


def with_lineage(items: list[WorkItem], store: Store) -> Iterator[WorkItem]:
    """The items with their lineage JSON, read from the store as the executor asks for them: the
    driver holds only the lineages in flight, however many versions the audit has."""
    for item in items:
        yield replace(item, version_json=store.lineage_json(item.key))
