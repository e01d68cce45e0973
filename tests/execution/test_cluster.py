"""A real multi-process Ray cluster on this machine: `ray start --head` on 127.0.0.1, then
`auditor audit --address 127.0.0.1:PORT`, then stop exactly the processes this test started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from exec_helpers import duplicate_keys, score_rows
from tinyaudit import spec_dict

from tests.support.paths import ROOT

pytestmark = pytest.mark.ray

RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_under(temp_dir: str) -> list[int]:
    """PIDs of the processes whose command line names our temp dir (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if temp_dir.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _wait_until_started(head: subprocess.Popen, deadline_s: float = 90.0) -> None:
    started, seen = time.monotonic(), []
    while time.monotonic() - started < deadline_s:
        line = head.stdout.readline()
        if not line and head.poll() is not None:
            break
        seen.append(line)
        if "Ray runtime started" in line:
            return
    raise AssertionError("ray start did not come up:\n" + "".join(seen[-30:]))


def _stop(head: subprocess.Popen, temp_dir: str) -> None:
    """`ray stop` for this cluster only: end the blocking `ray start`, which ends the processes
    it started; anything still running from our temp dir is then killed by PID."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
    deadline = time.monotonic() + 15
    while _processes_under(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _processes_under(temp_dir):
        os.kill(pid, signal.SIGKILL)
    head.stdout.close()


@pytest.fixture
def ray_head(ray_session):
    """`ray start --head` on 127.0.0.1 with one CPU, in its own temp dir."""
    port, temp_dir = _free_port(), tempfile.mkdtemp(prefix="rt", dir="/tmp")
    command = [str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
               "--num-cpus=1", "--include-dashboard=false", f"--temp-dir={temp_dir}",
               "--object-store-memory=100000000", "--block"]
    head = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ.copy())
    try:
        _wait_until_started(head)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head, temp_dir)
        assert not _processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_cli_audit_on_a_ray_start_cluster(ray_head, tiny_store, tmp_path):
    db, keys = tiny_store
    spec_path = tmp_path / "audit.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict()))
    result = subprocess.run([sys.executable, "-m", "auditor", "audit", str(spec_path), "--db",
                             str(db), "--executor", "ray", "--address", ray_head],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{len(keys)} planned, 0 already stored, {len(keys)} done, 0 failed" in result.stdout
    rows = score_rows(db)
    assert len(rows) == len(keys) * 3 * 2 and not duplicate_keys(rows)
