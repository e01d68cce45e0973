"""Digests of table rows in the order they were written.

The rows one write adds to a subject (a run, a model version…) digest to ``"<rows>:<sha256>"``:
sha256 over the row count and, column by column in table order (less the subject columns, which
group the rows), the null mask and the values as Arrow lays them out: fixed-width values as
their little-endian bytes (nulls as zeros, DOUBLE as its IEEE-754 bits), strings as their lengths
then their bytes, lists as their lengths then their items. The bytes come from Arrow buffers, so
a million score rows hash in about a tenth of a second, and the digest is a plain sha256 of the
values stored. A subject's rows are read back in ``rowid`` order (the order they were appended),
so the rows of each logged write are a contiguous segment that ``verify`` re-hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from auditor.errors import StoreError
from auditor.store.schema import SUBJECT_COLUMNS, subject_sql

_BATCH_ROWS = 1 << 17


@dataclass(frozen=True)
class Digest:
    rows: int
    sha256: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        rows, sha = text.split(":")
        if len(sha) != 64 or int(rows) < 0:
            raise ValueError(f"not a row digest: {text!r}")
        int(sha, 16)
        return cls(int(rows), sha)

    def __str__(self) -> str:
        return f"{self.rows}:{self.sha256}"


# A table's columns never change once created (a schema change is a new table or migration that
# adds one), so they are looked up once per connection: the lookup cost a quarter of a small run.
_COLUMNS: dict[tuple[int, str], list[tuple[str, str]]] = {}


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of a table's columns, in order."""
    key = (id(conn), table)
    if key not in _COLUMNS:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
            [table]).fetchall()
        if not columns:
            return columns  # not created yet: ask again next time
        _COLUMNS[key] = columns
    return _COLUMNS[key]


def forget_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Drop the cached columns of a connection that is closing (its id may be reused)."""
    for key in [k for k in _COLUMNS if k[0] == id(conn)]:
        del _COLUMNS[key]


def digested_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for name, _ in table_columns(conn, table)
            if name not in SUBJECT_COLUMNS[table]]


def rows_digest(rows: pa.Table) -> Digest:
    """Digest of ``rows`` (already without subject columns), in their order."""
    h = hashlib.sha256(rows.num_rows.to_bytes(8, "little"))
    for column in rows.itercolumns():
        _feed(h, column.combine_chunks() if column.num_chunks != 1 else column.chunk(0))
    return Digest(rows.num_rows, h.hexdigest())


def _feed(h, array: pa.Array) -> None:
    kind = array.type
    if pa.types.is_dictionary(kind):
        return _feed(h, array.dictionary_decode())
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        return _feed(h, array.cast(pa.large_binary()))
    h.update(np.packbits(array.is_null().to_numpy(zero_copy_only=False)).tobytes())
    if pa.types.is_string(kind) or pa.types.is_binary(kind):
        return _feed_bytes(h, array, np.int32)
    if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
        return _feed_bytes(h, array, np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        h.update(pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
                 .tobytes())
        return _feed(h, array.flatten())
    if pa.types.is_boolean(kind):
        return h.update(pc.fill_null(array, False).to_numpy(zero_copy_only=False).tobytes())
    if kind.bit_width % 8 == 0 and not pa.types.is_nested(kind):
        return _feed_fixed(h, array, kind.bit_width // 8)
    raise StoreError(f"cannot digest a column of type {kind}")


def _feed_bytes(h, array: pa.Array, offset_type: type) -> None:
    if array.null_count:
        array = pc.fill_null(array, pa.scalar(b"" if pa.types.is_binary(array.type)
                                              or pa.types.is_large_binary(array.type) else "",
                                              array.type))
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type, count=len(array) + 1,
                            offset=array.offset * width)
    h.update(np.diff(offsets).astype(np.int64).tobytes())
    data = array.buffers()[2]
    if data is not None:
        h.update(memoryview(data)[int(offsets[0]):int(offsets[-1])])


def _feed_fixed(h, array: pa.Array, width: int) -> None:
    values = np.frombuffer(array.buffers()[1], dtype=np.uint8, count=len(array) * width,
                           offset=array.offset * width).reshape(len(array), width)
    if array.null_count:
        values = values.copy()
        values[array.is_null().to_numpy(zero_copy_only=False)] = 0
    h.update(values.tobytes())


def subject_digest(conn: duckdb.DuckDBPyConnection, table: str, subject: str) -> Digest:
    """Digest of all the rows of one subject as the table holds them now."""
    columns = ", ".join(f'"{name}"' for name in digested_columns(conn, table))
    rows = conn.sql(f'SELECT {columns} FROM "{table}" WHERE {subject_sql(table)} = ? '
                    "ORDER BY rowid", params=[subject]).to_arrow_table()
    return rows_digest(rows)


def stored_subjects(conn: duckdb.DuckDBPyConnection, table: str) -> Iterator[tuple[str, pa.Table]]:
    """Each subject of ``table`` with its rows in the order they were written (streamed: one
    subject's rows in memory at a time)."""
    columns = ", ".join(f'"{name}"' for name in digested_columns(conn, table))
    reader = conn.sql(f'SELECT {subject_sql(table)} AS _subject, {columns} FROM "{table}" '
                      "ORDER BY _subject, rowid").to_arrow_reader(_BATCH_ROWS)
    subject, pieces = None, []
    for batch in reader:
        for name, piece in _split_by_subject(batch):
            if name != subject and pieces:
                yield subject, pa.Table.from_batches(pieces)
                pieces = []
            subject = name
            pieces.append(piece)
    if pieces:
        yield subject, pa.Table.from_batches(pieces)


def _split_by_subject(batch: pa.RecordBatch) -> Iterator[tuple[str, pa.RecordBatch]]:
    names = batch.column(0)
    if len(names) == 0:
        return
    changes = np.flatnonzero(pc.not_equal(names[1:], names[:-1]).to_numpy(
        zero_copy_only=False)) + 1
    bounds = [0, *changes.tolist(), len(names)]
    for start, stop in zip(bounds, bounds[1:]):
        yield names[start].as_py(), batch.slice(start, stop - start).drop_columns(["_subject"])


# --- the expected schema, derived from the migrations --------------------------------------

_EXPECTED: dict[tuple, dict[str, list[tuple[str, str]]]] = {}


def expected_schema(migrations, bookkeeping: str) -> dict[str, list[tuple[str, str]]]:
    """Table -> its (column, type) list as the migrations create it: they are applied to an
    empty in-memory database once per process, so a migration added later is expected as soon
    as it exists (nothing here lists tables or columns by hand)."""
    key = (bookkeeping, *((m.name, m.sql) for m in migrations))
    if key not in _EXPECTED:
        with duckdb.connect(":memory:") as scratch:
            scratch.execute(bookkeeping)
            for migration in migrations:
                scratch.execute(migration.sql)
            _EXPECTED[key] = _schema(scratch)
    return _EXPECTED[key]


def _schema(conn: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall():
        tables.setdefault(table, []).append((column, kind))
    return tables


def schema_problems(conn: duckdb.DuckDBPyConnection,
                    expected: dict[str, list[tuple[str, str]]]) -> list[str]:
    """How the file's tables differ from ``expected``: a missing (dropped or renamed) table, a
    missing, added, retyped or reordered column. Tables the migrations do not create are left
    alone (a user's own views or scratch tables)."""
    actual = _schema(conn)
    problems = []
    for table, columns in expected.items():
        if table not in actual:
            problems.append(f"table {table} is missing (dropped or renamed)")
            continue
        have = actual[table]
        if have == columns:
            continue
        names, want = dict(have), dict(columns)
        missing = [c for c in want if c not in names]
        added = [c for c in names if c not in want]
        retyped = [c for c in want if c in names and names[c] != want[c]]
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + \
            ([f"unexpected column(s) {', '.join(added)}"] if added else []) + \
            ([f"column(s) {', '.join(retyped)} changed type"] if retyped else [])
        problems.append(f"table {table}: {'; '.join(parts) or 'columns reordered'}")
    return problems
