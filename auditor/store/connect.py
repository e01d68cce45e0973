"""Open a DuckDB file, turning DuckDB's lock and open errors into clear StoreErrors."""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from pathlib import Path

import duckdb

from auditor.errors import StoreError, StoreLockedError

_LOCK = re.compile(r"Could not set lock on file .*Conflicting lock is held in (?P<program>.*?)"
                   r" \(PID (?P<pid>\d+)\)", re.S)
_RETRY_EVERY_S = 0.1
log = logging.getLogger(__name__)
# file -> how many read-only Stores this process has open on it; -1: a writer
_held_here: dict[Path, int] = {}


def claim(path: Path, read_only: bool) -> None:
    """Refuse a Store on a file this process already holds for writing (or a writer on one it
    reads): DuckDB would share the database and event-log appends could interleave."""
    key = path.resolve()
    held = _held_here.get(key, 0)
    if held < 0 or (held > 0 and not read_only):
        raise StoreLockedError(f"this auditor process (PID {os.getpid()}) already holds {path}; "
                               "use the Store it opened, or close it first")
    _held_here[key] = held + 1 if read_only else -1


def release(path: Path, read_only: bool) -> None:
    key = path.resolve()
    remaining = _held_here.get(key, 0) - 1 if read_only else 0
    if remaining > 0:
        _held_here[key] = remaining
    else:
        _held_here.pop(key, None)


def connect(path: Path, *, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """Connect, retrying for up to ``wait`` seconds while another process holds the file."""
    if read_only and not path.exists():
        raise StoreError(f"no store at {path} (nothing has been written to it yet)")
    require_regular_file(path)
    deadline = time.monotonic() + max(wait, 0.0)
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            error = translate_open_error(path, exc, wait)
            if not isinstance(error, StoreLockedError) or time.monotonic() >= deadline:
                raise error from exc
            if not told:  # shown with --verbose: why the command seems to hang
                log.info("%s is held by another process; waiting up to %g s", path, wait)
                told = True
        time.sleep(_RETRY_EVERY_S)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def require_regular_file(path: Path) -> None:
    """Refuse a store path that is (or links to) anything but a regular file: DuckDB would block
    forever on a FIFO and read endless bytes from a device. A path that does not exist yet is
    fine (a writer creates it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open the store {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise StoreError(f"cannot open the store {path}: it is {kind}, not a store file")


def translate_open_error(path: Path, exc: duckdb.Error, wait: float) -> StoreError:
    message = str(exc)
    locked = _LOCK.search(message)
    if locked:
        waited = f"waited {wait:g} s; " if wait > 0 else ""
        return StoreLockedError(
            f"another auditor process (PID {locked['pid']}) holds {path}; {waited}"
            "retry when it finishes, or pass --wait SECONDS")
    first_line = message.splitlines()[0] if message else type(exc).__name__
    return StoreError(f"cannot open the store {path}: {first_line}")


def first_row(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a query, with the result fully consumed: a pending result would block
    the next relational (Arrow) query on the same connection."""
    rows = result.fetchall()
    return rows[0] if rows else None
