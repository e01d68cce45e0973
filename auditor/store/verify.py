"""Check the event log: the hash chain, and that every logged table still holds the rows the log
says were written (an edited, deleted or smuggled-in row changes its subject's digest)."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from auditor.errors import TamperError
from auditor.store.connect import first_row
from auditor.store.digests import Digest, table_digests
from auditor.store.events import GENESIS, REPLACE, Event, read_events
from auditor.store.schema import SUBJECT_COLUMNS


@dataclass(frozen=True)
class LogVerification:
    ok: bool
    events: int
    head_hash: str
    problems: list[str] = field(default_factory=list)

    def raise_if_tampered(self) -> None:
        if not self.ok:
            raise TamperError("the store's event log does not verify: " + "; ".join(self.problems))


def verify_log(conn: duckdb.DuckDBPyConnection) -> LogVerification:
    events = read_events(conn)
    problems = chain_problems(events) + row_problems(conn, events)
    head_hash = events[-1].hash if events else GENESIS
    return LogVerification(not problems, len(events), head_hash, problems)


def chain_problems(events: list[Event]) -> list[str]:
    problems = []
    prev_seq, prev_hash = 0, GENESIS
    for event in events:
        if event.seq != prev_seq + 1:
            problems.append(f"event {event.seq}: follows event {prev_seq} "
                            f"(events {prev_seq + 1}..{event.seq - 1} are missing)")
        if event.prev_hash != prev_hash:
            problems.append(f"event {event.seq}: prev_hash does not match event {prev_seq}'s hash")
        if event.expected_hash() != event.hash:
            problems.append(f"event {event.seq} ({event.kind} {event.subject}): "
                            "its fields were altered (hash does not match)")
        prev_seq, prev_hash = event.seq, event.hash
    return problems


def logged_digests(events: list[Event]) -> tuple[dict[tuple[str, str], Digest], list[str]]:
    """What the log says each (table, subject) holds, folding its events in order; and the
    events whose digests cannot be read."""
    state: dict[tuple[str, str], Digest] = {}
    unreadable = []
    for event in events:
        try:
            entries = [(*key.split(":", 1), text) for key, text in event.digests.items()]
            folded = [(table, subject, text.startswith(REPLACE),
                       Digest.parse(text.removeprefix(REPLACE)))
                      for table, subject, text in entries]
        except (ValueError, TypeError, AttributeError):
            unreadable.append(f"event {event.seq}: its rows_digest is unreadable")
            continue
        for table, subject, replaces, digest in folded:
            before = Digest.empty() if replaces else state.get((table, subject), Digest.empty())
            state[(table, subject)] = before + digest
    return state, unreadable


def row_problems(conn: duckdb.DuckDBPyConnection, events: list[Event]) -> list[str]:
    logged, problems = logged_digests(events)
    for table in SUBJECT_COLUMNS:
        if not _exists(conn, table):
            continue
        stored = table_digests(conn, table)
        expected = {s: d for (t, s), d in logged.items() if t == table and d.rows}
        for subject in sorted(set(stored) | set(expected), key=str):
            problem = _compare(table, subject, expected.get(subject), stored.get(subject))
            if problem:
                problems.append(problem)
    return problems


def _compare(table: str, subject: str, expected: Digest | None,
             stored: Digest | None) -> str | None:
    if expected == stored:
        return None
    if expected is None:
        return f"{table}: {stored.rows} row(s) of {subject!r} were written outside the log"
    if stored is None or stored.rows != expected.rows:
        held = stored.rows if stored else 0
        return (f"{table}: rows of {subject!r} were deleted or added "
                f"(the log records {expected.rows}, the table holds {held})")
    return f"{table}: rows of {subject!r} were altered (their digest differs from the log)"


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = first_row(conn.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = ? AND table_schema = 'main'", [table]))
    return bool(row[0])
