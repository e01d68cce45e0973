"""Apply the named migrations a store file lacks; refuse a file from a newer schema."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from auditor.errors import StoreError
from auditor.store.connect import first_row
from auditor.store.digests import (
    Digest,
    forget_columns,
    rows_digest,
    stored_subjects,
    subject_digest,
    table_columns,
)
from auditor.store.events import REPLACE, append_event, read_events, utc_now
from auditor.store.legacy_digests import LegacyDigest, legacy_subject_digest
from auditor.store.schema import Migration

BOOKKEEPING = ("CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")


def applied_migrations(conn: duckdb.DuckDBPyConnection) -> list[str]:
    exists = first_row(conn.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_name = 'schema_migrations'"))[0]
    if not exists:
        return []
    return [row[0] for row in conn.execute(
        "SELECT name FROM schema_migrations ORDER BY applied_at, name").fetchall()]


def pending_migrations(conn: duckdb.DuckDBPyConnection, path: Path,
                       migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations still to apply; StoreError when the file knows ones this code does not."""
    applied = applied_migrations(conn)
    known = {m.name for m in migrations}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise StoreError(
            f"{path} has a newer schema than this auditor knows (migration "
            f"{', '.join(unknown)}); upgrade auditor to open it")
    return [m for m in migrations if m.name not in applied]


def apply_migrations(conn: duckdb.DuckDBPyConnection, pending: Sequence[Migration],
                     actor: str) -> None:
    """Apply each pending migration with its event, all in the caller's transaction."""
    conn.execute(BOOKKEEPING)
    for migration in pending:
        intact = {table: _intact_subjects(conn, table) for table in migration.rehash
                  if _exists(conn, table)}
        conn.execute(migration.sql)
        forget_columns(conn)  # the migration may have added columns
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", [migration.name, utc_now()])
        digest = subject_digest(conn, "schema_migrations", migration.name)
        digests = {f"schema_migrations:{migration.name}": str(digest)}
        for table, subjects in intact.items():
            for subject in subjects:
                digests[f"{table}:{subject}"] = REPLACE + str(subject_digest(conn, table, subject))
        append_event(conn, actor=actor, kind="schema.migrate", subject=migration.name,
                     digests=digests)


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(first_row(conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
        "AND table_schema = 'main'", [table]))[0])


def _intact_subjects(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The subjects of ``table`` whose rows still match the digests the log holds for them (a
    migration that changes rows re-digests only those: a tampered subject stays tampered)."""
    from auditor.store.verify import logged_digests

    logged, _ = logged_digests(read_events(conn))
    intact = []
    for subject, rows in stored_subjects(conn, table):
        writes = logged.get((table, subject))
        if writes and _matches(conn, table, subject, writes, rows):
            intact.append(subject)
    return intact


def _matches(conn, table: str, subject: str, writes: list, rows) -> bool:
    if sum(w.rows for w in writes) != rows.num_rows:
        return False
    if all(isinstance(w, LegacyDigest) for w in writes):
        stored = legacy_subject_digest(conn, table, subject, table_columns(conn, table))
        return stored == sum(writes[1:], writes[0])
    if not all(isinstance(w, Digest) for w in writes):
        return False
    start = 0
    for write in writes:
        if rows_digest(rows.slice(start, write.rows)) != write:
            return False
        start += write.rows
    return True
