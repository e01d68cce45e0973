"""Order-independent digests of table rows, computed in DuckDB SQL.

A row's text is its columns (less the subject columns, which group the rows) in table order, each
cast to VARCHAR (DOUBLE/FLOAT as the hex of their IEEE bits), NULL as ``chr(0)``, joined by
``chr(31)``; its hash is sha256 of that text. The digest of a set of rows is the row count plus
four lane sums, each lane a 60-bit slice of the row hashes (an additive multiset hash). Digests of
two batches add up to the digest of their union, so the log can record one digest per insert and
``verify`` can compare the sum with a digest recomputed from the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from auditor.store.schema import SUBJECT_COLUMNS, subject_sql

_LANES = 4
_LANE_HEX = 15


@dataclass(frozen=True)
class Digest:
    rows: int
    lanes: tuple[int, ...]

    @classmethod
    def empty(cls) -> Digest:
        return cls(0, (0,) * _LANES)

    @classmethod
    def parse(cls, text: str) -> Digest:
        rows, *lanes = (int(part) for part in text.split(":"))
        return cls(rows, tuple(lanes))

    def __add__(self, other: Digest) -> Digest:
        return Digest(self.rows + other.rows,
                      tuple(a + b for a, b in zip(self.lanes, other.lanes)))

    def __str__(self) -> str:
        return ":".join(str(n) for n in (self.rows, *self.lanes))


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


def _column_text(name: str, kind: str) -> str:
    if kind in ("DOUBLE", "FLOAT"):  # the IEEE bits, not a formatting of them
        return f'hex(CAST(CAST("{name}" AS BIT) AS BLOB))'
    return f'CAST("{name}" AS VARCHAR)'


def row_text_sql(columns: list[tuple[str, str]]) -> str:
    parts = ", ".join(f"coalesce({_column_text(name, kind)}, chr(0))" for name, kind in columns)
    return f"concat_ws(chr(31), {parts})"


def grouped_digest_sql(source_sql: str, columns: list[tuple[str, str]], subject: str) -> str:
    """SQL giving (subject, rows, lane sums…) over the rows of ``source_sql``."""
    lanes = ", ".join(f"sum(('0x' || substr(h, {1 + _LANE_HEX * i}, {_LANE_HEX}))::BIGINT)"
                      for i in range(_LANES))
    return (f"SELECT subject, count(*), {lanes} FROM ("
            f"SELECT {subject} AS subject, sha256({row_text_sql(columns)}) AS h "
            f"FROM ({source_sql})) GROUP BY subject")


def digests_by_subject(conn: duckdb.DuckDBPyConnection, table: str, source_sql: str,
                       params: list | None = None) -> dict[str, Digest]:
    """Digest of each subject's rows among ``source_sql`` (rows shaped like ``table``)."""
    columns = [(name, kind) for name, kind in table_columns(conn, table)
               if name not in SUBJECT_COLUMNS[table]]
    sql = grouped_digest_sql(source_sql, columns, subject_sql(table))
    rows = conn.execute(sql, params or []).fetchall()
    return {subject: Digest(int(n), tuple(int(x) for x in lanes)) for subject, n, *lanes in rows}


def table_digests(conn: duckdb.DuckDBPyConnection, table: str) -> dict[str, Digest]:
    return digests_by_subject(conn, table, f'SELECT * FROM "{table}"')


def subject_digest(conn: duckdb.DuckDBPyConnection, table: str, subject: str) -> Digest:
    """Digest of the rows of one subject as the table holds them now."""
    source = f'SELECT * FROM "{table}" WHERE {subject_sql(table)} = ?'
    return digests_by_subject(conn, table, source, [subject]).get(subject, Digest.empty())
