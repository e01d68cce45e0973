"""Apply the named migrations a store file lacks; refuse a file from a newer schema."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from auditor.errors import StoreError
from auditor.store.connect import first_row
from auditor.store.digests import subject_digest
from auditor.store.events import append_event, utc_now
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
        conn.execute(migration.sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", [migration.name, utc_now()])
        digest = subject_digest(conn, "schema_migrations", migration.name)
        append_event(conn, actor=actor, kind="schema.migrate", subject=migration.name,
                     digests={f"schema_migrations:{migration.name}": str(digest)})
