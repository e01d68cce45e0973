"""Two processes on one store file: the second gets a clear message, or waits with --wait."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.errors import StoreLockedError
from auditor.store import Store
from auditor.store.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]
_HOLDER = """
import sys, time
from auditor.store import Store
store = Store.open(sys.argv[1])
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
print("closed", flush=True)
"""


def _hold(db_path: Path, seconds: float) -> subprocess.Popen:
    """Start a process that opens the store for writing and holds it ``seconds``."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db_path), str(seconds)],
                              stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "ready"
    return holder


def _stop(holder: subprocess.Popen) -> None:
    holder.terminate()
    holder.wait(timeout=30)


def test_a_second_writer_process_is_told_who_holds_the_file(db_path):
    holder = _hold(db_path, 60)
    try:
        with pytest.raises(StoreLockedError) as caught:
            Store.open(db_path)
        message = str(caught.value)
        assert message == (f"another auditor process (PID {holder.pid}) holds {db_path}; "
                           "retry when it finishes, or pass --wait SECONDS")
        assert "\n" not in message
        with pytest.raises(StoreLockedError, match=f"PID {holder.pid}"):
            Store.open(db_path, read_only=True)
    finally:
        _stop(holder)


def test_wait_succeeds_when_the_other_process_lets_go_in_time(db_path, version):
    holder = _hold(db_path, 1.0)
    try:
        started = time.monotonic()
        with Store.open(db_path, wait=30) as store:
            store.add_version(version)
        waited = time.monotonic() - started
        assert holder.stdout.readline().strip() == "closed"
        assert 0.5 <= waited < 30  # we got in only once the holder let go, after ~1 s
    finally:
        _stop(holder)


def test_wait_gives_up_with_the_lock_message_after_its_timeout(db_path):
    holder = _hold(db_path, 60)
    try:
        started = time.monotonic()
        with pytest.raises(StoreLockedError, match=r"PID \d+\) holds .*waited 0.5 s"):
            Store.open(db_path, wait=0.5)
        assert 0.5 <= time.monotonic() - started < 10
    finally:
        _stop(holder)


def test_cli_reports_the_lock_in_one_line_with_exit_code_2(db_path, capsys):
    holder = _hold(db_path, 60)
    try:
        assert main(["log", "verify", "--db", str(db_path)]) == 2
        err = capsys.readouterr().err
        assert err == (f"auditor: error: another auditor process (PID {holder.pid}) holds "
                       f"{db_path}; retry when it finishes, or pass --wait SECONDS\n")
    finally:
        _stop(holder)


def test_cli_wait_option_retries_until_the_holder_exits(db_path, capsys):
    holder = _hold(db_path, 1.0)
    try:
        assert main(["log", "verify", "--db", str(db_path), "--wait", "30"]) == 0
        assert f"log intact, {len(MIGRATIONS)} events" in capsys.readouterr().out
    finally:
        _stop(holder)


def test_a_second_store_on_the_same_file_in_one_process_is_refused(db_path):
    with Store.open(db_path):
        with pytest.raises(StoreLockedError, match=f"this auditor process .PID {os.getpid()}. "
                                                   "already holds"):
            Store.open(db_path, read_only=True)
    with Store.open(db_path, read_only=True) as store:  # released on close
        assert store.verify_log().ok


def test_several_read_only_stores_in_one_process_are_fine(db_path):
    Store.open(db_path).close()
    with Store.open(db_path, read_only=True) as first, \
            Store.open(db_path, read_only=True) as second:
        assert first.head_hash() == second.head_hash()
        with pytest.raises(StoreLockedError, match="already holds"):
            Store.open(db_path)
    Store.open(db_path).close()
