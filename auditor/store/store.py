"""``Store``: the DuckDB file that holds lineage, scores, policy results and the event log.

A thin, SQL-visible store in the manner of sqlite-utils' ``Database``: a handful of named methods
(in ``versions``, ``runs`` and ``records``), a raw ``query`` escape hatch, named migrations. Every
write happens in a transaction and appends one event to the hash-chained log in it.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from auditor.errors import StoreError
from auditor.store import calibrations, records, runs, versions
from auditor.store.arrow_io import insert_arrow
from auditor.store.connect import claim, connect, release
from auditor.store.digests import Digest, forget_columns
from auditor.store.events import Event, append_event, forget_head, head, read_events
from auditor.store.migrations import BOOKKEEPING, apply_migrations, pending_migrations
from auditor.store.schema import MIGRATIONS, Migration
from auditor.store.verify import LogVerification, check_schema, require_verified, verify_log


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Store(versions.VersionMethods, runs.RunMethods, records.RecordMethods,
            calibrations.CalibrationMethods):
    """Open with ``Store.open(path)``; use as a context manager to close it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool,
                 actor: str):
        self.conn, self.path, self.read_only, self.actor = conn, path, read_only, actor
        self._depth = 0
        self._open = True

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = False, wait: float = 0.0,
             actor: str | None = None,
             migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        """Open (creating when writable) and migrate; raises StoreLockedError when another
        process holds the file and ``wait`` seconds pass without it letting go."""
        path = Path(path).expanduser()
        claim(path, read_only)
        try:
            conn = connect(path, read_only=read_only, wait=wait)
        except BaseException:
            release(path, read_only)
            raise
        store = cls(conn, path, read_only=read_only, actor=actor or default_actor())
        try:
            store._migrate(migrations)
        except duckdb.Error as exc:
            store.close()
            raise StoreError(f"cannot read the store {path}: "
                             f"{str(exc).strip().splitlines()[0]}") from None
        except BaseException:
            store.close()
            raise
        return store

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        pending = pending_migrations(self.conn, self.path, migrations)
        if pending and self.read_only:
            raise StoreError(f"{self.path} needs schema migrations "
                             f"({', '.join(m.name for m in pending)}); open it for writing once")
        if pending:
            with self.transaction():
                apply_migrations(self.conn, pending, self.actor)
        check_schema(self.conn, self.path, migrations, BOOKKEEPING)

    def close(self) -> None:
        if self._open:
            self._open = False
            forget_columns(self.conn)
            forget_head(self.conn)
            self.conn.close()
            release(self.path, self.read_only)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One DuckDB transaction; nested calls join the outer one. Rolls back on exception."""
        self._require_writable()
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.conn.begin()
        forget_head(self.conn)  # read the head afresh, inside the transaction
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            forget_head(self.conn)
            self.conn.rollback()
            raise
        self._depth = 0
        self._commit()

    def _commit(self) -> None:
        try:
            self.conn.commit()
        except duckdb.Error as exc:
            forget_head(self.conn)  # the transaction's appends are gone
            raise StoreError(f"cannot commit to {self.path}: {exc}") from exc

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")

    def _insert_rows(self, table: str, rows: pa.Table | list[dict[str, Any]],
                    subject: str) -> Digest:
        """Insert rows of one subject (inside a transaction) and return their digest."""
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
        with self.transaction():
            return insert_arrow(self.conn, table, data, subject)

    def _log(self, kind: str, subject: str | None, payload: dict[str, Any] | None = None,
            digests: dict[str, str] | None = None) -> Event:
        with self.transaction():
            return append_event(self.conn, actor=self.actor, kind=kind, subject=subject,
                                payload=payload, digests=digests)

    def events(self, limit: int | None = None) -> list[Event]:
        return read_events(self.conn, limit)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the latest event; (0, 64 zeros) for an empty log."""
        return head(self.conn)

    def head_hash(self) -> str:
        return self.head()[1]

    def verify_log(self) -> LogVerification:
        return verify_log(self.conn)

    def require_verified(self, purpose: str) -> LogVerification:
        """``verify_log``, raising TamperError (exit 2) when the store does not verify."""
        return require_verified(self.conn, self.path, purpose)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Raw SQL escape hatch; rows as dicts. Writes made here bypass the log (and show up
        in ``verify_log``)."""
        try:
            result = self.conn.execute(sql, list(params) if params else [])
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
        if result.description is None:
            return []
        names = [column[0] for column in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    def arrow(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Query results as Arrow; ``params`` positional (``?``) or named (``$name``)."""
        if params is not None and not isinstance(params, Mapping):
            params = list(params)
        try:
            return self.conn.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {exc}") from exc
