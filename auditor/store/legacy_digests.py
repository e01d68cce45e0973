"""Row digests of stores written before ordered digests (``rows:lane:lane:lane:lane``).

Kept only so ``verify`` can still check those files. Each row's text was its columns (less the
subject columns) in table order, cast to VARCHAR (DOUBLE/FLOAT as the hex of their IEEE bits),
NULL as ``chr(0)``, joined by ``chr(31)``; a set of rows digested to its row count plus four
sums of 60-bit slices of the rows' sha256 (an additive multiset hash).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from auditor.store.schema import SUBJECT_COLUMNS, subject_sql

LANES = 4
_LANE_HEX = 15


@dataclass(frozen=True)
class LegacyDigest:
    rows: int
    lanes: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> LegacyDigest:
        rows, *lanes = (int(part) for part in text.split(":"))
        if len(lanes) != LANES:
            raise ValueError(f"not a legacy digest: {text!r}")
        return cls(rows, tuple(lanes))

    def __add__(self, other: LegacyDigest) -> LegacyDigest:
        return LegacyDigest(self.rows + other.rows,
                            tuple(a + b for a, b in zip(self.lanes, other.lanes)))


def _column_text(name: str, kind: str) -> str:
    if kind in ("DOUBLE", "FLOAT"):
        return f'hex(CAST(CAST("{name}" AS BIT) AS BLOB))'
    return f'CAST("{name}" AS VARCHAR)'


def legacy_subject_digest(conn: duckdb.DuckDBPyConnection, table: str, subject: str,
                          columns: list[tuple[str, str]]) -> LegacyDigest:
    """The legacy digest of one subject's rows as the table holds them now."""
    columns = [(name, kind) for name, kind in columns if name not in SUBJECT_COLUMNS[table]]
    text = ", ".join(f"coalesce({_column_text(name, kind)}, chr(0))" for name, kind in columns)
    lanes = ", ".join(f"coalesce(sum(('0x' || substr(h, {1 + _LANE_HEX * i}, {_LANE_HEX}))"
                      f"::BIGINT), 0)" for i in range(LANES))
    row = conn.execute(
        f"SELECT count(*), {lanes} FROM (SELECT sha256(concat_ws(chr(31), {text})) AS h "
        f'FROM "{table}" WHERE {subject_sql(table)} = ?)', [subject]).fetchall()[0]
    return LegacyDigest(int(row[0]), tuple(int(x) for x in row[1:]))
