"""Store methods for model versions and their lineage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from auditor.errors import InputError, StoreError
from auditor.lineage.models import ModelVersion
from auditor.store.connect import first_row
from auditor.store.events import utc_now
from auditor.store.lineage_rows import lineage_sha256, lineage_tables, utc_naive
from auditor.store.periods import period_bounds

if TYPE_CHECKING:
    from auditor.store.store import Store


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    created_at: datetime | None
    stage_count: int
    source: str | None
    added_at: datetime

    @property
    def key(self) -> str:
        return f"{self.model}@{self.version}"


def split_key(key: str) -> tuple[str, str]:
    model, sep, version = key.partition("@")
    if not sep or not model or not version:
        raise InputError(f"{key!r} is not a version key of the form model@version")
    return model, version


class VersionMethods:
    def add_version(self: Store, version: ModelVersion, source: str | None = None) -> bool:
        """Record a version's lineage; True when written, False when already identical.

        A different lineage under an existing ``model@version`` raises StoreError.
        """
        with self.transaction():
            if self._known_lineage(version):
                return False
            digests = self._add_model(version.model)
            for table, rows in lineage_tables(version, source, utc_now()).items():
                if rows:
                    digest = self._insert_rows(table, rows, version.key)
                    digests[f"{table}:{version.key}"] = str(digest)
            self._log("version.add", version.key,
                     {"stages": len(version.stages), "source": source}, digests)
            return True

    def _known_lineage(self: Store, version: ModelVersion) -> bool:
        row = first_row(self.conn.execute(
            "SELECT lineage_sha256 FROM versions WHERE model = ? AND version = ?",
            [version.model, version.version]))
        if row is None:
            return False
        if row[0] != lineage_sha256(version):
            raise StoreError(f"{version.key} is already recorded in {self.path} with a different "
                             "lineage; record the new lineage under a new version")
        return True

    def _add_model(self: Store, model: str) -> dict[str, str]:
        seen = first_row(self.conn.execute("SELECT count(*) FROM models WHERE model = ?", [model]))
        if seen[0]:
            return {}
        digest = self._insert_rows("models", [{"model": model, "added_at": utc_now()}], model)
        return {f"models:{model}": str(digest)}

    def get_version(self: Store, key: str) -> ModelVersion:
        return ModelVersion.model_validate_json(self.lineage_json(key))

    def lineage_json(self: Store, key: str) -> str:
        """The version's lineage as stored (JSON text, validated when it was added)."""
        model, version = split_key(key)
        row = first_row(self.conn.execute(
            "SELECT lineage_json FROM versions WHERE model = ? AND version = ?",
            [model, version]))
        if row is None:
            raise StoreError(f"version {key} is not in the store {self.path}")
        return row[0]

    def list_versions(self: Store, model: str | None = None,
                      period: str | None = None) -> list[VersionInfo]:
        """Versions, oldest first; ``period`` (e.g. ``2026-Q4``) filters on ``created_at``."""
        where, params = ["TRUE"], []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if period is not None:
            where.append("created_at >= ? AND created_at < ?")
            params.extend(period_bounds(period))
        rows = self.conn.execute(
            "SELECT model, version, created_at, stage_count, source, added_at FROM versions "
            f"WHERE {' AND '.join(where)} ORDER BY model, created_at NULLS LAST, version",
            params).fetchall()
        return [VersionInfo(*row) for row in rows]

    def previous_version(self: Store, key: str, estimator: str | None = None,
                         config_hash: str | None = None) -> ModelVersion | None:
        """The latest version of the same model created before ``key`` that has scores (from a
        complete run) under ``estimator`` and ``config_hash`` (None: any)."""
        current = self.get_version(key)
        if current.created_at is None:
            raise StoreError(f"{key} has no created_at, so no version comes before it")
        row = first_row(self.conn.execute(
            "SELECT v.version FROM versions v WHERE v.model = ? AND v.created_at < ? AND EXISTS ("
            " SELECT 1 FROM stage_scores s JOIN runs r USING (run_id)"
            " WHERE r.status = 'complete' AND s.model = v.model AND s.version = v.version"
            " AND (? IS NULL OR s.estimator = ?) AND (? IS NULL OR s.config_hash = ?))"
            " ORDER BY v.created_at DESC, v.version DESC LIMIT 1",
            [current.model, utc_naive(current.created_at), estimator, estimator,
             config_hash, config_hash]))
        return self.get_version(f"{current.model}@{row[0]}") if row else None

