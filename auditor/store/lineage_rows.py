"""Flatten a ModelVersion into the rows of versions, stages, datasets and checkpoints."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from auditor.hashing import sha256_bytes
from auditor.lineage.models import ModelVersion, Stage


def utc_naive(moment: datetime | None) -> datetime | None:
    """A datetime as naive UTC (naive input is taken to be UTC already)."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def lineage_sha256(version: ModelVersion) -> str:
    return sha256_bytes(version.model_dump_json().encode())


def version_row(version: ModelVersion, source: str | None, added_at: datetime) -> dict[str, Any]:
    return {
        "model": version.model, "version": version.version,
        "created_at": utc_naive(version.created_at), "task": version.task,
        "parameters": version.parameters, "description": version.description,
        "licence": version.licence, "parent": version.parent,
        "stage_count": len(version.stages), "lineage_json": version.model_dump_json(),
        "lineage_sha256": lineage_sha256(version), "source": source, "added_at": added_at,
    }


def _sha(ref: Any) -> str | None:
    return ref.sha256 if ref is not None else None


def stage_row(version: ModelVersion, index: int, stage: Stage) -> dict[str, Any]:
    return {
        "model": version.model, "version": version.version, "stage_index": index,
        "stage_id": stage.id, "kind": stage.kind, "started_at": utc_naive(stage.started_at),
        "ended_at": utc_naive(stage.ended_at), "convention": stage.convention,
        "theta_start_sha256": stage.theta_start.sha256,
        "theta_end_sha256": stage.theta_end.sha256,
        "optimizer_start_sha256": _sha(stage.optimizer_start),
        "optimizer_end_sha256": _sha(stage.optimizer_end),
        "optimizer_kind": stage.optimizer.kind, "steps": stage.steps,
        "replayable": stage.replayable, "config_hash": stage.config_hash,
        "code_commit": stage.code_commit,
    }


def dataset_rows(version: ModelVersion) -> list[dict[str, Any]]:
    return [{"model": version.model, "version": version.version, "stage_id": stage.id,
             "name": d.name, "digest": d.digest, "records": d.records, "licence": d.licence,
             "provenance": d.provenance, "tags": list(d.tags)}
            for stage in version.stages for d in stage.datasets]


def checkpoint_rows(version: ModelVersion) -> list[dict[str, Any]]:
    return [{"model": version.model, "version": version.version, "stage_id": stage.id,
             "role": role, "uri": ref.uri, "sha256": ref.sha256, "format": ref.format}
            for stage in version.stages for role, ref in stage.checkpoints()]


def lineage_tables(version: ModelVersion, source: str | None,
                   added_at: datetime) -> dict[str, list[dict[str, Any]]]:
    """Rows per table for one version (models is handled separately: one row per model)."""
    return {
        "versions": [version_row(version, source, added_at)],
        "stages": [stage_row(version, i, s) for i, s in enumerate(version.stages)],
        "datasets": dataset_rows(version),
        "checkpoints": checkpoint_rows(version),
    }
