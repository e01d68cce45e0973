"""Bulk inserts from Arrow: one ``INSERT … SELECT`` per batch, never a Python loop over rows."""

from __future__ import annotations

import contextlib
import itertools

import duckdb
import pyarrow as pa

from auditor.errors import StoreError
from auditor.store.digests import Digest, digests_by_subject, table_columns

_names = (f"_auditor_incoming_{n}" for n in itertools.count())


def check_columns(table: str, expected: list[str], got: list[str]) -> None:
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    if missing or extra:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"unknown {', '.join(extra)}" if extra else "") if part)
        raise StoreError(f"rows for table {table} have the wrong columns ({detail})")


def _cast_select(view: str, columns: list[tuple[str, str]]) -> str:
    casts = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in columns)
    return f"SELECT {casts} FROM {view}"


def insert_arrow(conn: duckdb.DuckDBPyConnection, table: str, data: pa.Table,
                 subject: str) -> Digest:
    """Insert ``data`` into ``table``; every row must belong to ``subject``; returns their digest.

    Columns are matched by name and cast to the table's types in SQL, so the digest is computed
    over exactly the values stored.
    """
    columns = table_columns(conn, table)
    check_columns(table, [name for name, _ in columns], data.column_names)
    view = next(_names)
    conn.register(view, data)
    try:
        select = _cast_select(view, columns)
        digest = _single_subject_digest(conn, table, select, subject)
        if digest.rows:
            conn.execute(f'INSERT INTO "{table}" {select}')
        return digest
    except duckdb.Error as exc:
        raise StoreError(f"cannot insert rows into {table}: {exc}") from exc
    finally:
        _unregister(conn, view)


def _unregister(conn: duckdb.DuckDBPyConnection, view: str) -> None:
    """Drop the Arrow view; in an aborted transaction the rollback drops it instead."""
    with contextlib.suppress(duckdb.Error):
        conn.unregister(view)


def _single_subject_digest(conn: duckdb.DuckDBPyConnection, table: str, select: str,
                           subject: str) -> Digest:
    digests = digests_by_subject(conn, table, select)
    strangers = sorted(str(s) for s in digests if s != subject)
    if strangers:
        raise StoreError(f"rows for {table} of {subject!r} also hold rows of "
                         f"{', '.join(strangers[:3])}")
    return digests.get(subject, Digest.empty())
