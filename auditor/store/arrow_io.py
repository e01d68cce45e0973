"""Bulk inserts from Arrow: one ``INSERT … SELECT`` per batch, never a Python loop over rows."""

from __future__ import annotations

import contextlib
import itertools

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from auditor.errors import StoreError
from auditor.store.digests import Digest, rows_digest, table_columns
from auditor.store.schema import SUBJECT_COLUMNS

_names = (f"_auditor_incoming_{n}" for n in itertools.count())

# The Arrow type DuckDB stores and returns for each column type the store uses. Rows already of
# these types (or castable to them without loss) skip DuckDB's cast, whose round trip through
# Arrow costs more than the insert for a small write.
_ARROW_OF = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
             "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.timestamp("us"),
             "DATE": pa.date32(), "VARCHAR[]": pa.list_(pa.string())}


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

    Columns are matched by name and brought to the table's types (by pyarrow when the cast is
    exact, else by DuckDB's ``CAST``); the digest is taken of those rows, which are then inserted
    as they are, so it covers exactly the values stored.
    """
    columns = table_columns(conn, table)
    check_columns(table, [name for name, _ in columns], data.column_names)
    try:
        stored = _as_stored(data, columns)
        if stored is None:
            with _registered(conn, data) as view:
                stored = conn.sql(_cast_select(view, columns)).to_arrow_table()
        _check_subject(table, stored, subject)
        subject_columns = SUBJECT_COLUMNS[table]
        digest = rows_digest(stored.drop_columns(list(subject_columns)))
        if digest.rows:
            with _registered(conn, stored) as view:
                conn.execute(f'INSERT INTO "{table}" SELECT * FROM {view}')
        return digest
    except duckdb.Error as exc:
        raise StoreError(f"cannot insert rows into {table}: {exc}") from exc


def _as_stored(data: pa.Table, columns: list[tuple[str, str]]) -> pa.Table | None:
    """``data`` in table order with the types DuckDB stores, when every column already has its
    type or casts to it exactly (no values, a dictionary of strings, a narrower integer or
    float); None: let DuckDB cast it."""
    arrays = []
    for name, kind in columns:
        column, target = data.column(name), _ARROW_OF.get(kind)
        if target is None or not _exact_cast(column.type, target):
            return None
        try:
            arrays.append(column if column.type == target else column.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. an int out of range
            return None
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


def _exact_cast(source: pa.DataType, target: pa.DataType) -> bool:
    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return source.value_type == target and pa.types.is_string(target)
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return True  # a value out of range fails the (safe) cast: DuckDB then decides
    return pa.types.is_floating(source) and target == pa.float64()


@contextlib.contextmanager
def _registered(conn: duckdb.DuckDBPyConnection, data: pa.Table):
    view = next(_names)
    conn.register(view, data)
    try:
        yield view
    finally:
        # in an aborted transaction the rollback drops the view instead
        with contextlib.suppress(duckdb.Error):
            conn.unregister(view)


def _check_subject(table: str, rows: pa.Table, subject: str) -> None:
    """Refuse rows of another subject than the write's (they would escape its digest)."""
    parts = [rows.column(name) for name in SUBJECT_COLUMNS[table]]
    names = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "@")
    strangers = sorted(str(s) for s in pc.unique(names).to_pylist() if s != subject)
    if strangers:
        raise StoreError(f"rows for {table} of {subject!r} also hold rows of "
                         f"{', '.join(strangers[:3])}")
