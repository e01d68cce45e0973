"""Open a DuckDB file, turning DuckDB's lock and open errors into clear StoreErrors."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import duckdb

from auditor.errors import StoreError, StoreLockedError

_LOCK = re.compile(r"Could not set lock on file .*Conflicting lock is held in (?P<program>.*?)"
                   r" \(PID (?P<pid>\d+)\)", re.S)
_RETRY_EVERY_S = 0.1
_held_here: set[Path] = set()  # files this process has open through a Store


def claim(path: Path) -> None:
    """Refuse a second Store on a file this process already holds: DuckDB would share the
    database between them and their event-log appends could interleave."""
    key = path.resolve()
    if key in _held_here:
        raise StoreLockedError(f"this auditor process (PID {os.getpid()}) already holds {path}; "
                               "use the Store it opened")
    _held_here.add(key)


def release(path: Path) -> None:
    _held_here.discard(path.resolve())


def connect(path: Path, *, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    """Connect, retrying for up to ``wait`` seconds while another process holds the file."""
    if read_only and not path.exists():
        raise StoreError(f"no store at {path} (nothing has been written to it yet)")
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            error = translate_open_error(path, exc, wait)
            if not isinstance(error, StoreLockedError) or time.monotonic() >= deadline:
                raise error from exc
        time.sleep(_RETRY_EVERY_S)


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
