"""The library API: the only place that composes the rooms (lineage, store, estimators, ...).

The CLI is a thin layer over these functions; so are the tests of the whole system.
"""

from __future__ import annotations

from pathlib import Path

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
