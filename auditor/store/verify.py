"""Check the event log: the hash chain, and that every logged table still holds the rows the log
says were written (an edited, deleted or smuggled-in row changes its subject's digest)."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from auditor.errors import StoreError, TamperError
from auditor.store.connect import first_row
from auditor.store.digests import (
    Digest,
    expected_schema,
    rows_digest,
    schema_problems,
    stored_subjects,
    table_columns,
)
from auditor.store.events import GENESIS, REPLACE, Event, read_events
from auditor.store.legacy_digests import LANES, LegacyDigest, legacy_subject_digest
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


def check_schema(conn: duckdb.DuckDBPyConnection, path, migrations, bookkeeping: str) -> None:
    """StoreError (exit 2) when the file's tables or columns are not the ones the migrations
    create: a dropped, renamed or altered table is damage, never a policy outcome."""
    problems = schema_problems(conn, expected_schema(migrations, bookkeeping))
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more"
                                           if len(problems) > 3 else "")
        raise StoreError(f"{path} does not have the schema its migrations create ({shown}): "
                         "it was altered outside auditor; restore it from a backup")


def require_verified(conn: duckdb.DuckDBPyConnection, path, purpose: str) -> LogVerification:
    """The log verification, or a TamperError (exit 2) naming the first problem: the gate and
    the report use store rows only after they match their digests and the hash chain."""
    result = verify_log(conn)
    if not result.ok:
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        raise TamperError(f"{path} does not verify, so it cannot be used to {purpose}: "
                          f"{result.problems[0]}{more}; run 'auditor log verify' for the list")
    return result


def verify_log(conn: duckdb.DuckDBPyConnection) -> LogVerification:
    try:
        return _verify_log(conn)
    except duckdb.Error as exc:
        raise StoreError(f"cannot read the store to verify it: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _verify_log(conn: duckdb.DuckDBPyConnection) -> LogVerification:
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


Logged = list[Digest | LegacyDigest]


def logged_digests(events: list[Event]) -> tuple[dict[tuple[str, str], Logged], list[str]]:
    """The digests of the writes each (table, subject) received, in order, folding replacements;
    and the events whose digests cannot be read."""
    state: dict[tuple[str, str], Logged] = {}
    unreadable = []
    for event in events:
        try:
            entries = [(*key.split(":", 1), text) for key, text in event.digests.items()]
            folded = [(table, subject, text.startswith(REPLACE),
                       _parse(text.removeprefix(REPLACE)))
                      for table, subject, text in entries]
        except (ValueError, TypeError, AttributeError):
            unreadable.append(f"event {event.seq}: its rows_digest is unreadable")
            continue
        for table, subject, replaces, digest in folded:
            before = [] if replaces else state.get((table, subject), [])
            state[(table, subject)] = [*before, digest] if digest.rows else before
    return state, unreadable


def _parse(text: str) -> Digest | LegacyDigest:
    return LegacyDigest.parse(text) if text.count(":") == LANES else Digest.parse(text)


def row_problems(conn: duckdb.DuckDBPyConnection, events: list[Event]) -> list[str]:
    logged, problems = logged_digests(events)
    for table in SUBJECT_COLUMNS:
        if not _exists(conn, table):
            continue
        expected = {s: writes for (t, s), writes in logged.items() if t == table and writes}
        seen = set()
        for subject, rows in stored_subjects(conn, table):
            seen.add(subject)
            problems.extend(_subject_problems(conn, table, subject, expected.get(subject), rows))
        for subject in sorted(set(expected) - seen):
            problems.append(_deleted(table, subject, _count(expected[subject]), 0))
    return problems


def _subject_problems(conn: duckdb.DuckDBPyConnection, table: str, subject: str,
                      writes: Logged | None, rows: pa.Table) -> list[str]:
    if writes is None:
        return [f"{table}: {rows.num_rows} row(s) of {subject!r} were written outside the log"]
    if _count(writes) != rows.num_rows:
        return [_deleted(table, subject, _count(writes), rows.num_rows)]
    if any(isinstance(w, LegacyDigest) for w in writes):
        return _check_legacy(conn, table, subject, writes)
    start = 0
    for write in writes:
        if rows_digest(rows.slice(start, write.rows)) != write:
            return [_altered(table, subject)]
        start += write.rows
    return []


def _check_legacy(conn: duckdb.DuckDBPyConnection, table: str, subject: str,
                  writes: Logged) -> list[str]:
    if not all(isinstance(w, LegacyDigest) for w in writes):
        return [f"{table}: rows of {subject!r} mix legacy and ordered digests; they cannot be "
                "checked"]
    expected = sum(writes[1:], writes[0])
    stored = legacy_subject_digest(conn, table, subject, table_columns(conn, table))
    return [] if stored == expected else [_altered(table, subject)]


def _count(writes: Logged) -> int:
    return sum(w.rows for w in writes)


def _deleted(table: str, subject: str, logged: int, held: int) -> str:
    return (f"{table}: rows of {subject!r} were deleted or added "
            f"(the log records {logged}, the table holds {held})")


def _altered(table: str, subject: str) -> str:
    return f"{table}: rows of {subject!r} were altered (their digest differs from the log)"


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = first_row(conn.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name = ? AND table_schema = 'main'", [table]))
    return bool(row[0])
