"""The dashboard's shared read-only connection (``auditor.serve.reader``) on a real DuckDB file:
a burst of requests opens the store once; it is let go when idle, when its hold is over (and
stays closed long enough for a waiting writer in another process to get in), and when the file
is replaced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from auditor.serve.reader import SharedReader
from tests.support.paths import ROOT, WORKER_PATH

_WRITER = """
import sys, time
from auditor.store import Store
from tests.support.factories import make_version
start = time.monotonic()
with Store.open(sys.argv[1], wait=float(sys.argv[2])) as store, store.transaction():
    store.add_version(make_version("writer", "v1"))
print(f"wrote after {time.monotonic() - start:.2f} s", flush=True)
"""


@pytest.fixture
def copy(built, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(built.db, db)
    return db


def _versions(reader: SharedReader) -> int:
    with reader.borrow() as store:
        return len(store.list_versions())


def test_a_burst_shares_one_connection_and_lets_go_when_idle(copy):
    reader = SharedReader(copy, wait=1.0, idle=1.0, hold=30.0)
    try:
        assert [_versions(reader) for _ in range(5)] == [5] * 5
        assert reader.opens == 1 and reader.is_open
        deadline = time.monotonic() + 10
        while reader.is_open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not reader.is_open  # let go after the idle window
        assert _versions(reader) == 5 and reader.opens == 2
    finally:
        reader.close()
    assert not reader.is_open


def test_threads_read_at_once_through_their_own_cursors(copy):
    reader = SharedReader(copy, wait=1.0, idle=5.0, hold=30.0)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.extend(_versions(reader)
                                                             for _ in range(10)))
               for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert counts == [5] * 40 and reader.opens == 1
    finally:
        reader.close()


def test_a_replaced_file_is_opened_again(copy, tmp_path):
    reader = SharedReader(copy, wait=1.0, idle=30.0, hold=30.0)
    try:
        assert _versions(reader) == 5
        smaller = tmp_path / "other.duckdb"
        subprocess.run([sys.executable, "-c", _WRITER, str(smaller), "0"], check=True,
                       cwd=ROOT, env=os.environ | {"PYTHONPATH": WORKER_PATH},
                       capture_output=True)
        os.replace(smaller, copy)  # what a restore from backup does
        assert _versions(reader) == 1 and reader.opens == 2
    finally:
        reader.close()


def test_a_waiting_writer_gets_in_while_requests_keep_coming(copy):
    """Requests back to back never leave the store idle; the hold (1 s here) still ends and the
    gap after it lets a writer waiting 3 s in."""
    reader = SharedReader(copy, wait=10.0, idle=5.0, hold=1.0, gap=0.3)
    stop = threading.Event()
    served: list[int] = []

    def browse():
        while not stop.is_set():
            served.append(_versions(reader))

    browser = threading.Thread(target=browse)
    browser.start()
    try:
        time.sleep(0.3)
        writer = subprocess.run([sys.executable, "-c", _WRITER, str(copy), "3"], cwd=ROOT,
                                env=os.environ | {"PYTHONPATH": WORKER_PATH}, text=True,
                                capture_output=True, timeout=120)
        time.sleep(1.0)
    finally:
        stop.set()
        browser.join(timeout=60)
        reader.close()
    assert writer.returncode == 0, writer.stderr
    assert "wrote after" in writer.stdout
    assert len(served) > 10 and set(served) == {5, 6}  # browsing went on, then saw it
    assert reader.opens >= 2
