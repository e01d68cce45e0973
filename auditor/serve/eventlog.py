"""The event log page: a window of the hash chain and the verification of the whole log."""

from __future__ import annotations

from typing import Any

from auditor.store import Store


def event_log(store: Store, *, limit: int, before: int | None) -> dict[str, Any]:
    check = store.verify_log()
    where, params = ("WHERE seq < ?", [before]) if before is not None else ("", [])
    events = store.query(f"SELECT seq, \"at\", actor, kind, subject, payload_json, prev_hash, "
                         f"hash FROM events {where} ORDER BY seq DESC LIMIT ?", [*params, limit])
    oldest = events[-1]["seq"] if events else None
    return {"verification": {"ok": check.ok, "events": check.events, "head": check.head_hash,
                             "problems": check.problems},
            "limit": limit, "before": before, "events": events,
            "older": oldest if oldest is not None and oldest > 1 else None}
