"""Store methods for behaviour definitions and rendered reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from auditor.errors import StoreError
from auditor.store.connect import first_row
from auditor.store.events import utc_now

if TYPE_CHECKING:
    from auditor.store.store import Store

_DIRECTIONS = ("harm", "benefit")


class RecordMethods:
    def add_behaviour(self: Store, name: str, direction: str, description: str = "",
                      probe_digest: str = "", *, metric: str = "",
                      probe_size: int | None = None) -> bool:
        """Record a behaviour definition; True when written, False when already recorded.

        A name may hold several definitions (one per probe digest) as probes evolve.
        ``metric``: what the reported number is (an error rate); ``probe_size``: examples in
        the probe set (None: not known).
        """
        if direction not in _DIRECTIONS:
            raise StoreError(f"behaviour {name!r}: direction must be harm or benefit")
        if probe_size is not None and (not isinstance(probe_size, int) or probe_size < 0):
            raise StoreError(f"behaviour {name!r}: probe size must be a count, not "
                             f"{probe_size!r}")
        with self.transaction():
            known = first_row(self.conn.execute(
                "SELECT count(*) FROM behaviours WHERE name = ? AND direction = ? AND "
                "description = ? AND probe_digest = ? AND metric IS NOT DISTINCT FROM ? AND "
                "probe_size IS NOT DISTINCT FROM ?",
                [name, direction, description, probe_digest, metric or None, probe_size]))[0]
            if known:
                return False
            row = {"name": name, "direction": direction, "description": description,
                   "probe_digest": probe_digest, "added_at": utc_now(),
                   "metric": metric or None, "probe_size": probe_size}
            digest = self._insert_rows("behaviours", [row], name)
            self._log("behaviour.add", name, {"probe_digest": probe_digest},
                     {f"behaviours:{name}": str(digest)})
            return True

    def behaviours(self: Store) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM behaviours ORDER BY name, added_at")

    def add_report(self: Store, kind: str, path: str, sha256: str, signer: str | None = None,
                   *, report_id: str | None = None, created_at: datetime | None = None) -> str:
        report_id = report_id or uuid.uuid4().hex
        row = {"report_id": report_id, "kind": kind, "path": str(path), "sha256": sha256,
               "signer": signer, "created_at": created_at or utc_now()}
        with self.transaction():
            if first_row(self.conn.execute("SELECT count(*) FROM reports WHERE report_id = ?",
                                 [report_id]))[0]:
                raise StoreError(f"report {report_id} is already recorded")
            digest = self._insert_rows("reports", [row], report_id)
            self._log("report.add", report_id, {"kind": kind, "sha256": sha256},
                     {f"reports:{report_id}": str(digest)})
        return report_id

    def reports(self: Store) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM reports ORDER BY created_at, report_id")
