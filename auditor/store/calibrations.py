"""Store methods for conformal calibrations (docs/certify.md): what a band was computed from —
estimator configuration, coverage target, sampled replay units, residuals, normalisation, the
band per stratum and its measured leave-one-out coverage. One row per calibration, logged."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from auditor.store.events import utc_now

if TYPE_CHECKING:
    from auditor.store.store import Store

_JSON = {"q_json": "q_by_stratum", "units_json": "units", "residuals_json": "residuals",
         "coverage_json": "coverage_by_stratum"}


class CalibrationMethods:
    def insert_calibration(self: Store, row: dict[str, Any]) -> str:
        """Store one calibration (columns of table ``calibrations``; ``*_json`` may be given
        as Python values) and return its id."""
        row = dict(row)
        row.setdefault("calibration_id", uuid.uuid4().hex)
        row.setdefault("created_at", utc_now())
        for name in _JSON:
            if not isinstance(row.get(name), str):
                row[name] = json.dumps(row.get(name), sort_keys=True, allow_nan=True)
        calibration_id = row["calibration_id"]
        with self.transaction():
            digest = self._insert_rows("calibrations", [row], calibration_id)
            self._log("calibration.insert", calibration_id,
                      {"estimator": row["estimator"], "config_hash": row["config_hash"]},
                      {f"calibrations:{calibration_id}": str(digest)})
        return calibration_id

    def calibrations(self: Store, ids: list[str] | None = None,
                     estimator: str | None = None) -> list[dict[str, Any]]:
        """Calibrations (JSON columns decoded), oldest first."""
        where, params = [], []
        if ids is not None:
            where.append("list_contains(?, calibration_id)")
            params.append(list(ids))
        if estimator is not None:
            where.append("estimator = ?")
            params.append(estimator)
        sql = "SELECT * FROM calibrations" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.query(sql + " ORDER BY created_at, calibration_id", params)
        for row in rows:
            for name, decoded in _JSON.items():
                row[decoded] = json.loads(row.pop(name))
        return rows
