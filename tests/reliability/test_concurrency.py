"""Two auditor processes on one database (docs/store.md, "Locking and many processes").

While one process writes, a second ``auditor`` CLI process, writer or reader, exits 2 with the
one-line lock message naming the file and the holder's PID; with ``--wait SECONDS`` it waits,
then succeeds and sees what the first committed. Several read-only processes share the file; a
writer is refused while any of them holds it. Everything runs as real processes
(``python -m auditor``), the holder included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT, TESTS, WORKER_PATH

sys.path.insert(0, str(TESTS / "execution"))

from tinyaudit import record_tiny, spec_dict  # noqa: E402

from auditor.api import add_version  # noqa: E402
from auditor.cli import main  # noqa: E402
from auditor.errors import StoreLockedError  # noqa: E402
from auditor.execution.worker import HOOKS_ENV  # noqa: E402
from auditor.store import Store  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": WORKER_PATH}
ENV.pop(HOOKS_ENV, None)

# Opens the store (read-only when asked), adds a version inside a transaction when given one,
# says "ready", and commits and exits when a line arrives on stdin.
_HOLDER = """
import sys
from auditor.store import Store
from auditor.lineage.io import LINEAGE_FILE, read_lineage_json
db, mode, folder = sys.argv[1:4]
def hold():
    print("ready", flush=True)
    sys.stdin.readline()
with Store.open(db, read_only=mode == "read") as store:
    if folder == "-":
        hold()
    else:
        with store.transaction():
            store.add_version(read_lineage_json(f"{folder}/{LINEAGE_FILE}"), source=folder)
            hold()
"""


def lock_message(db: Path, pid: int, waited: str = "") -> str:
    return (f"auditor: error: another auditor process (PID {pid}) holds {db}; {waited}"
            "retry when it finishes, or pass --wait SECONDS\n")


def start_cli(*argv, env=ENV) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "auditor", *map(str, argv)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


class Holder:
    """A second process holding the store: ``mode`` "write" or "read"; with ``folder``, it
    adds that recorded version in a transaction it commits on release."""

    def __init__(self, db: Path, mode: str = "write", folder: Path | None = None):
        self.process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(db), mode, str(folder or "-")], env=ENV,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        self.pid = self.process.pid

    def release(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("\n")
            self.process.stdin.flush()
        assert self.process.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with tiny@v000 recorded and scored, and tiny@v001/v002 recorded but not added."""
    work = tmp_path_factory.mktemp("concurrency")
    db = work / "template.duckdb"
    folders = [work / f"v{index:03d}" for index in range(3)]
    versions = [record_tiny(folder, index, steps=2) for index, folder in enumerate(folders)]
    add_version(versions[0], folders[0], db=db)
    assert main(["attribute", "--version", "tiny@v000", "--estimator", "naive", "--behaviours",
                 "tinyaudit:behaviours", "--db", str(db)]) == 0
    return db, folders


@pytest.fixture
def store(tmp_path, template):
    db, folders = template
    copy = tmp_path / "auditor.duckdb"
    shutil.copy(db, copy)
    return copy, folders


def head(db: Path) -> tuple[int, str]:
    with Store.open(db, read_only=True) as opened:
        check = opened.verify_log()
        assert check.ok, check.problems
        return check.events, check.head_hash


def test_second_process_gets_the_lock_message_while_one_writes(store):
    db, folders = store
    before = head(db)
    holder = Holder(db, "write", folders[1])
    try:
        started = time.monotonic()
        commands = {
            "gate": start_cli("gate", "--version", "tiny@v000", "--db", db),
            "log verify": start_cli("log", "verify", "--db", db),
            "lineage show --wait 1": start_cli("lineage", "show", "tiny@v000", "--db", db,
                                               "--wait", "1"),
        }
        results = {name: finish(process) for name, process in commands.items()}
        elapsed = time.monotonic() - started
        assert holder.process.poll() is None  # it held the file all along
    finally:
        holder.release()
    for name, (code, _, err) in results.items():
        waited = "waited 1 s; " if name.endswith("--wait 1") else ""
        assert (code, err) == (2, lock_message(db, holder.pid, waited)), name
    assert elapsed >= 1.0
    events, _ = head(db)  # only the holder's write landed
    assert events == before[0] + 1


def _until_waiting(process: subprocess.Popen) -> list[str]:
    """Read a ``--verbose`` command's stderr until it says it is waiting for the lock."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "is held by another process; waiting up to" in line:
            return lines
    raise AssertionError(f"never waited: {''.join(lines)}")


def test_wait_lets_the_second_process_finish_after_the_first(store):
    db, folders = store
    holder = Holder(db, "write", folders[1])
    try:
        writer = start_cli("--verbose", "lineage", "add", folders[2], "--db", db, "--wait", "90")
        reader = start_cli("--verbose", "lineage", "show", "tiny@v001", "--db", db, "--wait",
                           "90")
        for process in (writer, reader):
            _until_waiting(process)  # both are retrying while the holder writes
        assert writer.poll() is None and reader.poll() is None
    finally:
        holder.release()
    code, out, err = finish(writer)
    assert code == 0 and "added tiny@v002" in out, err
    code, out, err = finish(reader)  # the reader sees the version the holder committed
    assert code == 0 and "tiny@v001" in out, err
    with Store.open(db, read_only=True) as opened:
        assert {(v.model, v.version) for v in opened.list_versions()} == {
            ("tiny", "v000"), ("tiny", "v001"), ("tiny", "v002")}
    head(db)


def test_readers_share_the_file_and_a_writer_waits_for_them(store):
    db, folders = store
    holder = Holder(db, "read")
    try:
        reader = start_cli("log", "verify", "--db", db)
        writer = start_cli("lineage", "add", folders[1], "--db", db)
        code, out, err = finish(reader)
        assert code == 0 and "intact" in out.lower(), (out, err)
        assert finish(writer)[1:] == ("", lock_message(db, holder.pid))
        assert writer.returncode == 2
    finally:
        holder.release()


def test_a_slow_audit_holds_the_store_until_it_finishes(store, tmp_path):
    """The writer is a real ``auditor audit`` slowed by the test hook: a gate without --wait is
    refused naming the audit's PID; with --wait it gates on the audit's new scores."""
    db, _ = store
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "delay").write_text("8")
    spec = spec_dict(estimator="naive") | {"behaviours": {"tiny": "tinyaudit:other"}}
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec))
    audit = start_cli("audit", tmp_path / "audit.yaml", "--executor", "local", "--quiet",
                      "--db", db, "--wait", "30", env={**ENV, HOOKS_ENV: str(hooks)})
    try:
        _wait_until_locked(db, audit)
        refused = start_cli("gate", "--version", "tiny@v000", "--db", db)
        patient = start_cli("--verbose", "gate", "--version", "tiny@v000", "--db", db,
                            "--wait", "90", "--json")
        assert finish(refused)[::2] == (2, lock_message(db, audit.pid))
        _until_waiting(patient)
        assert audit.poll() is None  # refused, and waiting, while the audit was running
        code, out, err = finish(audit)
        assert code == 0, err
        code, out, err = finish(patient)
        assert code in (0, 1) and '"tail-loss"' in out, err  # the audit's behaviour
    finally:
        if audit.poll() is None:
            audit.kill()
            audit.wait()
    head(db)


def _wait_until_locked(db: Path, process: subprocess.Popen, limit: float = 60.0) -> None:
    """Until ``process`` holds the store (a read-only open is refused)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            Store.open(db, read_only=True).close()
        except StoreLockedError:
            return
        time.sleep(0.05)
    raise AssertionError("the audit never opened the store")
