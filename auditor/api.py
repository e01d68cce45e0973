"""The library API: the only place that composes the rooms (lineage, store, estimators, ...).

The CLI is a thin layer over these functions; so are the tests of the whole system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auditor.errors import InputError
from auditor.lineage.io import read_lineage_json, write_lineage_json
from auditor.lineage.models import ModelVersion
from auditor.lineage.recorder import LINEAGE_FILE


def open_store(db: str | Path, *, read_only: bool = False, wait: float = 0.0):
    from auditor.store import Store

    return Store.open(db, read_only=read_only, wait=wait)


def import_lineage(spec: str | Path, *, db: str | Path, wait: float = 0.0,
                   out: str | Path | None = None) -> ModelVersion:
    """Import a lineage.yaml of a model trained elsewhere and add it to the store."""
    from auditor.lineage.importer import import_lineage as parse

    version = parse(spec)
    if out is not None:
        write_lineage_json(version, out)
    add_version(version, Path(spec).resolve().parent, db=db, wait=wait)
    return version


def add_version(version: ModelVersion, root: str | Path, *, db: str | Path,
                wait: float = 0.0) -> None:
    """Store a recorded or imported lineage; ``root`` is the folder its checkpoint URIs are in."""
    with open_store(db, wait=wait) as store, store.transaction():
        store.add_version(version, source=str(Path(root).resolve()))


def record_lineage(folder: str | Path, *, db: str | Path, wait: float = 0.0) -> ModelVersion:
    """Add a Recorder's output folder (lineage.json + checkpoints) to the store."""
    folder = Path(folder)
    version = read_lineage_json(folder / LINEAGE_FILE)
    add_version(version, folder, db=db, wait=wait)
    return version


def load_version(source: str, *, db: str | Path) -> ModelVersion:
    """A lineage from a file or folder path, else from the store by MODEL@VERSION."""
    path = Path(source)
    if path.is_dir():
        path = path / LINEAGE_FILE
    if path.is_file():
        return read_lineage_json(path)
    with open_store(db, read_only=True) as store:
        return store.get_version(source)


def version_source(key: str, *, db: str | Path) -> tuple[ModelVersion, Path]:
    """A stored version and the folder its checkpoint URIs are relative to."""
    from auditor.store.versions import split_key

    model, _ = split_key(key)
    with open_store(db, read_only=True) as store:
        version = store.get_version(key)
        info = next(i for i in store.list_versions(model=model) if i.key == key)
    return version, Path(info.source or ".")


@dataclass(frozen=True)
class Remediation:
    original: str
    remediated: str
    dropped_stage: str
    folder: Path
    before: dict[str, float]
    after: dict[str, float]


def remediate(key: str, stage_id: str, *, db: str | Path, behaviours: str,
              new_version: str | None = None, out: str | Path | None = None,
              wait: float = 0.0) -> Remediation:
    """Re-run the later stages without ``stage_id``, record the result as a new version, and
    measure every behaviour before and after on its held-out probes."""
    from auditor.behaviours.library import load_behaviours
    from auditor.lineage.counterfactual import load_model
    from auditor.lineage.remediate import drop_stage
    from auditor.task import load_task

    version, root = version_source(key, db=db)
    if not version.task:
        raise InputError(f"{key} names no training task, so its stages cannot be re-run")
    task, measured = load_task(version.task), load_behaviours(behaviours)
    new_version = new_version or f"{version.version}-no-{stage_id}"
    folder = Path(out) if out else root.parent / f"{version.model}-{new_version}"
    new = drop_stage(version, root, task, stage_id, folder, new_version)
    before = load_model(task, version, root, version.stages[-1].theta_end)
    after = load_model(task, new, folder, new.stages[-1].theta_end)
    result = Remediation(key, new.key, stage_id, folder,
                         {b.name: b.measure(before) for b in measured},
                         {b.name: b.measure(after) for b in measured})
    with open_store(db, wait=wait) as store, store.transaction():
        store.add_version(new, source=str(folder.resolve()))
        store.record_run("remediation", {"from": key, "to": new.key, "dropped_stage": stage_id,
                                         "before": result.before, "after": result.after})
    return result


def gate(key: str, *, db: str | Path, policy=None, estimator: str | None = None,
         allow_indeterminate: bool = False, wait: float = 0.0, today=None):
    """Evaluate a policy (a path, a LoadedPolicy, or None for the shipped default) on version
    ``key``; the results and the verdict are recorded in the store in one transaction.
    Returns a ``GateResult`` (``.verdict``, ``.rows()``, ``.exit_code``)."""
    from auditor.errors import StoreError
    from auditor.policy.evaluate import gate as evaluate_gate
    from auditor.policy.load import LoadedPolicy, load_policy

    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    if not Path(db).expanduser().is_file():
        raise StoreError(f"no store at {db}: audit the version first")
    with open_store(db, wait=wait) as store:
        return evaluate_gate(store, key, loaded, estimator=estimator,
                             allow_indeterminate=allow_indeterminate, today=today)


def check_policy(path: str | Path):
    """Validate a policy file without running anything; raises PolicyError (file, line, key)."""
    from auditor.policy.load import load_policy

    return load_policy(path)
