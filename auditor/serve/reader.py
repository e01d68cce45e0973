"""One read-only connection to the store, shared by a burst of requests and let go soon after.

Opening the store costs 50–100 ms (DuckDB reads its catalog and the columns a page needs cold),
as much as a page's own queries. So the dashboard keeps one read-only Store open while requests
come (each request thread reads through its own cursor of it) and closes it:

- ``idle`` seconds (0.5) after the last request ended: a writer gets in between bursts;
- ``hold`` seconds (2) after it opened, even while requests keep coming; it then stays closed
  for ``gap`` seconds (0.3), longer than the 0.1 s between a waiting writer's tries, so
  ``auditor audit``/``gate --wait SECONDS`` gets the file while the dashboard is being browsed;
- when the file is replaced (its inode, size or modification time changed since it opened).

While a writer holds the file, a request waits for it (``wait`` seconds) as before; a writer
started with ``--wait`` longer than ``hold + gap`` plus the requests then in flight gets in.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auditor.errors import StoreLockedError
from auditor.store import Store
from auditor.store.digests import forget_columns
from auditor.store.events import forget_head

IDLE_S, HOLD_S, GAP_S = 0.5, 2.0, 0.3


class _Cursor(Store):
    """A request thread's view of the shared Store: its own DuckDB cursor of the one open
    database (a connection object must not serve two threads at once)."""

    def __init__(self, shared: Store):
        super().__init__(shared.conn.cursor(), shared.path, read_only=True, actor=shared.actor)

    def close(self) -> None:  # the shared Store holds the file's claim, not this cursor
        if self._open:
            self._open = False
            forget_columns(self.conn)
            forget_head(self.conn)
            self.conn.close()


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


class SharedReader:
    def __init__(self, db: Path, *, wait: float, idle: float = IDLE_S, hold: float = HOLD_S,
                 gap: float = GAP_S):
        self.db, self.wait, self.idle, self.hold, self.gap = db, wait, idle, hold, gap
        self._cond = threading.Condition()
        self._store: Store | None = None
        self._cursors: dict[int, _Cursor] = {}  # request thread -> its cursor
        self._users = 0
        self._opened = self._last = self._closed_until = 0.0
        self._file: tuple[int, int, int] | None = None
        self._failed: tuple[float, StoreLockedError] | None = None
        self._watcher: threading.Thread | None = None
        self._stopped = False
        self.opens = 0  # how many times the store was opened (the tests read it)

    @contextmanager
    def borrow(self) -> Iterator[Store]:
        """The store for one request (opened when none is; waits while a writer holds it)."""
        cursor = self._acquire()
        try:
            yield cursor
        finally:
            with self._cond:
                self._users -= 1
                self._last = time.monotonic()
                self._cond.notify_all()

    def _acquire(self) -> Store:
        arrived = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                if self._store is not None:
                    expired = now - self._opened >= self.hold
                    if not expired and _identity(self.db) == self._file:
                        break
                    if self._users:  # let the requests on it finish, admit no new one
                        self._cond.wait(0.05)
                        continue
                    self._close(pause=expired)
                    continue
                if self._failed and self._failed[0] >= arrived:  # queued behind a failed open
                    raise StoreLockedError(str(self._failed[1]))
                if now < self._closed_until:
                    self._cond.wait(self._closed_until - now)
                    continue
                self._open()
            self._users += 1
            thread = threading.get_ident()
            cursor = self._cursors.get(thread)
            if cursor is None:
                cursor = self._cursors[thread] = _Cursor(self._store)
            return cursor

    def _open(self) -> None:
        file = _identity(self.db)
        try:
            self._store = Store.open(self.db, read_only=True, wait=self.wait)
        except StoreLockedError as exc:
            self._failed = (time.monotonic(), exc)
            raise
        self._file = file
        self._opened = self._last = time.monotonic()
        self.opens += 1
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="auditor-serve-reader",
                                             daemon=True)
            self._watcher.start()
        self._cond.notify_all()

    def _close(self, *, pause: bool) -> None:
        for cursor in self._cursors.values():
            cursor.close()
        self._cursors.clear()
        if self._store is not None:
            self._store.close()
            self._store = None
        if pause:
            self._closed_until = time.monotonic() + self.gap
        self._cond.notify_all()

    def _watch(self) -> None:
        """Close the store once it is idle or its hold is over and no request is on it."""
        with self._cond:
            while not self._stopped:
                if self._store is None:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                hold_ends = self._opened + self.hold
                if self._users:
                    self._cond.wait(max(hold_ends - now, 0.01) if now < hold_ends else None)
                    continue
                due = min(self._last + self.idle, hold_ends)
                if now >= due:
                    self._close(pause=now >= hold_ends)
                else:
                    self._cond.wait(due - now)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            if self._users == 0:
                self._close(pause=False)
            self._cond.notify_all()

    @property
    def is_open(self) -> bool:
        return self._store is not None
