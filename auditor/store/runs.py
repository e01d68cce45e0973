"""Store methods for audit runs, their stage scores, policy results and verdicts.

A run counts only once it is ``complete``: readers never see the rows of a running or failed
run, and ``record_run`` writes a run and all its rows in one transaction.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.errors import StoreError
from auditor.hashing import canonical_json, config_hash
from auditor.store.connect import first_row
from auditor.store.digests import subject_digest, table_columns
from auditor.store.events import REPLACE, utc_now
from auditor.store.schema import RUN_STATUSES, VERDICTS
from auditor.store.versions import split_key

if TYPE_CHECKING:
    from auditor.store.store import Store


def with_run_id(table: pa.Table, run_id: str) -> pa.Table:
    """Add the ``run_id`` column when the rows lack it (dictionary-encoded: no copy per row)."""
    if "run_id" in table.column_names:
        return table
    indices = pa.array(np.zeros(table.num_rows, dtype=np.int32))
    column = pa.DictionaryArray.from_arrays(indices, pa.array([run_id], pa.string()))
    return table.append_column("run_id", column)


# Columns added to a table after its first release (migration 0005): rows written without them
# (older callers) get the values the migration gave the rows it found.
LATE_COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "stage_scores": {"evidence": pa.string(), "lo": pa.float64(), "hi": pa.float64(),
                     "calibration_id": pa.string()},
    "policy_results": {"evidence": pa.string(), "observed_lo": pa.float64(),
                       "observed_hi": pa.float64()},
}


def with_late_columns(table: str, rows: pa.Table, present: set[str]) -> pa.Table:
    """``rows`` with the late columns of ``table`` it lacks: NULL, except a score row's
    evidence (``exact`` for replay rows, whose lo = hi = effect; else ``uncalibrated``)."""
    for name, kind in LATE_COLUMNS.get(table, {}).items():
        if name in rows.column_names or name not in present:
            continue
        column = pa.nulls(rows.num_rows, kind)
        if table == "stage_scores" and name in ("evidence", "lo", "hi"):
            replay = np.asarray(rows.column("estimator").to_pylist(), dtype=object) == "replay"
            if name == "evidence":
                column = pa.array(np.where(replay, "exact", "uncalibrated").tolist(), kind)
            elif replay.any():  # lo = hi = effect (a bad effect column is the insert's error)
                column = pc.if_else(pa.array(replay), rows.column("effect"),
                                    pa.nulls(rows.num_rows, rows.column("effect").type))
        rows = rows.append_column(name, column)
    return rows


def _filters(**columns: Any) -> tuple[str, list[Any]]:
    used = {name: value for name, value in columns.items() if value is not None}
    where = " AND ".join(["r.status = 'complete'", *(f"t.{name} = ?" for name in used)])
    return where, list(used.values())


class RunMethods:
    def start_run(self: Store, kind: str, config: dict[str, Any]) -> str:
        run_id = uuid.uuid4().hex
        row = {"run_id": run_id, "kind": kind, "config_json": canonical_json(config),
               "config_hash": config_hash(config), "status": "running", "actor": self.actor,
               "started_at": utc_now(), "finished_at": None}
        with self.transaction():
            digest = self._insert_rows("runs", [row], run_id)
            self._log("run.start", run_id, {"kind": kind}, {f"runs:{run_id}": str(digest)})
        return run_id

    def finish_run(self: Store, run_id: str, status: str = "complete") -> None:
        if status not in RUN_STATUSES[1:]:
            raise StoreError(f"a run finishes as complete or failed, not {status!r}")
        with self.transaction():
            self._require_running(run_id)
            self.conn.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                              [status, utc_now(), run_id])
            digest = subject_digest(self.conn, "runs", run_id)
            self._log("run.finish", run_id, {"status": status},
                     {f"runs:{run_id}": REPLACE + str(digest)})

    def _require_running(self: Store, run_id: str) -> None:
        row = first_row(self.conn.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]))
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        if row[0] != "running":
            raise StoreError(f"run {run_id} is already {row[0]}; start a new run")

    def run_configs(self: Store, kind: str) -> list[dict[str, Any]]:
        """The configurations of the complete runs of ``kind``, oldest first."""
        rows = self.conn.execute("SELECT config_json FROM runs WHERE kind = ? AND "
                                 "status = 'complete' ORDER BY started_at", [kind]).fetchall()
        return [json.loads(row[0]) for row in rows]

    def run_config(self: Store, run_id: str) -> dict[str, Any]:
        row = first_row(self.conn.execute("SELECT config_json FROM runs WHERE run_id = ?",
                                [run_id]))
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        return json.loads(row[0])

    def _insert_run_rows(self: Store, table: str, run_id: str, rows: pa.Table) -> int:
        with self.transaction():
            self._require_running(run_id)
            present = {name for name, _ in table_columns(self.conn, table)}
            rows = with_late_columns(table, with_run_id(rows, run_id), present)
            digest = self._insert_rows(table, rows, run_id)
            self._log(f"{table}.insert", run_id, {"rows": digest.rows},
                     {f"{table}:{run_id}": str(digest)})
            return digest.rows

    def insert_scores(self: Store, run_id: str, table: pa.Table) -> int:
        """Bulk-insert score rows (columns of docs/contracts.md) into a running run."""
        return self._insert_run_rows("stage_scores", run_id, table)

    def insert_policy_results(self: Store, run_id: str, table: pa.Table) -> int:
        return self._insert_run_rows("policy_results", run_id, table)

    def insert_verdict(self: Store, run_id: str, model: str, version: str, policy_id: str,
                       policy_hash: str, verdict: str,
                       evaluated_at: datetime | None = None) -> None:
        if verdict not in VERDICTS:
            raise StoreError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        row = {"run_id": run_id, "model": model, "version": version, "policy_id": policy_id,
               "policy_hash": policy_hash, "verdict": verdict,
               "evaluated_at": evaluated_at or utc_now()}
        self._insert_run_rows("verdicts", run_id, pa.Table.from_pylist([row]))

    def insert_fidelity_checks(self: Store, run_id: str, table: pa.Table) -> int:
        """Replay spot checks of an estimator (columns of table ``fidelity_checks``)."""
        return self._insert_run_rows("fidelity_checks", run_id, table)

    def record_run(self: Store, kind: str, config: dict[str, Any], *,
                   scores: pa.Table | None = None, policy_results: pa.Table | None = None,
                   verdicts: list[dict[str, Any]] | None = None,
                   fidelity_checks: pa.Table | None = None) -> str:
        """Write a run with all its rows and mark it complete, in ONE transaction."""
        with self.transaction():
            run_id = self.start_run(kind, config)
            if scores is not None:
                self.insert_scores(run_id, scores)
            if policy_results is not None:
                self.insert_policy_results(run_id, policy_results)
            for verdict in verdicts or []:
                self.insert_verdict(run_id, **verdict)
            if fidelity_checks is not None:
                self.insert_fidelity_checks(run_id, fidelity_checks)
            self.finish_run(run_id, "complete")
        return run_id

    def _complete_rows(self: Store, table: str, **filters: Any) -> pa.Table:
        where, params = _filters(**filters)
        return self.arrow(f"SELECT t.* FROM {table} t JOIN runs r USING (run_id) "
                          f"WHERE {where} ORDER BY ALL", params)

    def scores(self: Store, model: str | None = None, version: str | None = None,
               estimator: str | None = None, config_hash: str | None = None) -> pa.Table:
        """Score rows of complete runs, as Arrow."""
        return self._complete_rows("stage_scores", model=model, version=version,
                                   estimator=estimator, config_hash=config_hash)

    def has_scores(self: Store, key: str, estimator: str, config_hash: str) -> bool:
        model, version = split_key(key)
        where, params = _filters(model=model, version=version, estimator=estimator,
                                 config_hash=config_hash)
        row = first_row(self.conn.execute(f"SELECT EXISTS (SELECT 1 FROM stage_scores t JOIN runs r "
                                f"USING (run_id) WHERE {where})", params))
        return bool(row[0])

    def policy_results(self: Store, model: str | None = None, version: str | None = None,
                       policy_id: str | None = None) -> pa.Table:
        return self._complete_rows("policy_results", model=model, version=version,
                                   policy_id=policy_id)

    def fidelity_checks(self: Store, model: str | None = None, version: str | None = None,
                        estimator: str | None = None) -> pa.Table:
        return self._complete_rows("fidelity_checks", model=model, version=version,
                                   estimator=estimator)

    def verdicts(self: Store, model: str | None = None, version: str | None = None,
                 policy_id: str | None = None) -> pa.Table:
        return self._complete_rows("verdicts", model=model, version=version,
                                   policy_id=policy_id)
