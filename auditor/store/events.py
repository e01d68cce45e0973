"""The append-only, hash-chained event log: one event per write, in the write's transaction.

``hash = sha256(prev_hash + canonical_json([seq, at, actor, kind, subject, payload_json,
rows_digest]))``; the first event's ``prev_hash`` is 64 zeros. ``rows_digest`` is canonical JSON
mapping ``"table:subject"`` to the digest of the rows the event wrote (``"=…"`` when the event
replaced that subject's rows, e.g. a run's status update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from auditor.hashing import canonical_json, sha256_bytes
from auditor.store.connect import first_row

GENESIS = "0" * 64
REPLACE = "="


@dataclass(frozen=True)
class Event:
    seq: int
    at: datetime
    actor: str
    kind: str
    subject: str | None
    payload_json: str
    rows_digest: str
    prev_hash: str
    hash: str

    @property
    def digests(self) -> dict[str, str]:
        return json.loads(self.rows_digest)

    def expected_hash(self) -> str:
        return event_hash(self.prev_hash, self.seq, self.at, self.actor, self.kind,
                          self.subject, self.payload_json, self.rows_digest)


def event_hash(prev_hash: str, seq: int, at: datetime, actor: str, kind: str,
               subject: str | None, payload_json: str, rows_digest: str) -> str:
    fields = [seq, at.isoformat(), actor, kind, subject, payload_json, rows_digest]
    return sha256_bytes((prev_hash + canonical_json(fields)).encode())


def utc_now() -> datetime:
    """Now in UTC as a naive datetime (the store's TIMESTAMP convention)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


# The head each connection last read or appended, so that the events of one transaction read
# the table once (a run writes three). ``Store.transaction`` forgets it when a transaction
# begins, so a rolled-back append is never remembered.
_HEADS: dict[int, tuple[int, str]] = {}


def head(conn: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    if id(conn) not in _HEADS:
        row = first_row(conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"))
        _HEADS[id(conn)] = (row[0], row[1]) if row else (0, GENESIS)
    return _HEADS[id(conn)]


def forget_head(conn: duckdb.DuckDBPyConnection) -> None:
    _HEADS.pop(id(conn), None)


def append_event(conn: duckdb.DuckDBPyConnection, *, actor: str, kind: str,
                 subject: str | None, payload: dict[str, Any] | None = None,
                 digests: dict[str, str] | None = None) -> Event:
    last_seq, prev_hash = head(conn)
    at = utc_now()
    payload_json = canonical_json(payload or {})
    rows_digest = canonical_json(digests or {})
    seq = last_seq + 1
    digest = event_hash(prev_hash, seq, at, actor, kind, subject, payload_json, rows_digest)
    event = Event(seq, at, actor, kind, subject, payload_json, rows_digest, prev_hash, digest)
    conn.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [event.seq, event.at, event.actor, event.kind, event.subject,
                  event.payload_json, event.rows_digest, event.prev_hash, event.hash])
    _HEADS[id(conn)] = (event.seq, event.hash)
    return event


def read_events(conn: duckdb.DuckDBPyConnection, limit: int | None = None) -> list[Event]:
    """Events in order; with ``limit``, the latest ``limit`` of them."""
    sql = "SELECT * FROM events ORDER BY seq"
    if limit is not None:
        sql = (f"SELECT * FROM (SELECT * FROM events ORDER BY seq DESC LIMIT {int(limit)}) "
               "ORDER BY seq")
    return [Event(*row) for row in conn.execute(sql).fetchall()]
