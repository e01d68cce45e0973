"""Read and write lineage JSON files."""

from __future__ import annotations

import os
from pathlib import Path

from auditor.errors import LineageError
from auditor.lineage.models import ModelVersion
from auditor.yamlio import read_document, validate

LINEAGE_FILE = "lineage.json"  # a Recorder's folder holds it beside checkpoints/


def read_lineage_json(path: str | Path) -> ModelVersion:
    data, lines = read_document(path, LineageError)
    return validate(ModelVersion, data, path, lines, LineageError)


def write_lineage_json(version: ModelVersion, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(version.model_dump_json(indent=1))
    os.replace(tmp, path)
    return path
