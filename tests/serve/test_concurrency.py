"""While ``auditor serve`` runs, writers in other processes still work: the dashboard's read-only
connection is let go between bursts of requests and at most 2 s after it opened (then stays
closed 0.3 s), so ``auditor gate --wait`` gets the store even while pages are requested back to
back; and while a writer holds the store, a request waits and then answers 503 with the
documented lock message instead of failing obscurely."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from serving import Server

from tests.support.paths import ROOT, WORKER_PATH

pytestmark = pytest.mark.slow
_HOLDER = """
import sys, time
from auditor.store import Store
store = Store.open(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _auditor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "auditor", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300,
                          env=os.environ | {"PYTHONPATH": WORKER_PATH})


@pytest.fixture
def copy(built, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(built.db, db)
    return db


def test_gate_runs_while_the_dashboard_is_being_read(copy, built):
    server = Server(copy, "--wait", "30")
    statuses: list[int] = []
    stop = threading.Event()

    def browse():
        while not stop.is_set():
            for path in ("/api/overview", "/api/versions/clf/v1", "/api/log?limit=5"):
                statuses.append(_get(server.url + path)[0])

    reader = threading.Thread(target=browse)
    try:
        events_before = json.loads(_get(server.url + "/api/log?limit=1")[1])[
            "verification"]["events"]
        reader.start()
        time.sleep(1.0)
        results = [_auditor("gate", "--version", "clf@v1", "--policy", str(built.policy),
                            "--db", str(copy), "--wait", "60") for _ in range(2)]
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join(timeout=120)
        server.stop()
    for result in results:
        assert result.returncode == 0, result.stderr  # PASS, written to the store
        assert "PASS" in result.stdout
    assert len(statuses) >= 10 and set(statuses) == {200}, statuses  # read all along
    after = Server(copy)
    try:
        log = json.loads(_get(after.url + "/api/log?limit=1")[1])["verification"]
    finally:
        after.stop()
    assert log["ok"] and log["events"] > events_before  # the gates' writes are there


def test_a_gate_waiting_5_s_gets_in_while_pages_are_requested_back_to_back(copy, built):
    server = Server(copy)
    statuses: list[int] = []
    stop = threading.Event()

    def browse():  # the HTML pages a person clicks through, with no pause between them
        while not stop.is_set():
            for path in ("/", "/versions/clf/v2", "/versions/clf/v1"):
                statuses.append(_get(server.url + path)[0])

    reader = threading.Thread(target=browse)
    try:
        reader.start()
        time.sleep(1.0)
        gate = _auditor("gate", "--version", "clf@v1", "--policy", str(built.policy),
                        "--db", str(copy), "--wait", "5")
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join(timeout=120)
        server.stop()
    assert gate.returncode == 0, gate.stderr
    assert "PASS" in gate.stdout
    assert len(statuses) >= 6 and set(statuses) == {200}, statuses


def test_a_request_waits_for_a_writer_then_says_so(copy):
    server = Server(copy, "--wait", "0.5")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(copy)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, env=os.environ | {"PYTHONPATH": WORKER_PATH})
    try:
        assert holder.stdout.readline().strip() == "ready"
        status, body = _get(server.url + "/")
        assert status == 503
        assert f"another auditor process (PID {holder.pid}) holds" in body
        assert "Traceback" not in body
        status, body = _get(server.url + "/api/overview")
        assert status == 503 and json.loads(body)["error"]["title"] == "Store busy"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    status, _ = _get(server.url + "/")
    server.stop()
    assert status == 200  # the writer is gone: the dashboard reads again
