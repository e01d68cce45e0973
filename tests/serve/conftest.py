"""Fixtures of the dashboard tests: the demo-like store (built once per session), the app in
process (Starlette's test client) and the real thing (``auditor serve`` in a subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serve_data import Built, build  # noqa: E402
from testpaths import ROOT, WORKER_PATH  # noqa: E402

from auditor.serve import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    return build(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="session")
def client(built):
    from starlette.testclient import TestClient

    app = create_app(ServeSettings(db=built.db, trust=built.keys.root,
                                   max_upload=2 << 20))
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as test:
        yield test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, db: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = os.environ | {"PYTHONPATH": WORKER_PATH}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditor", "serve", "--db", str(db), "--port",
             str(self.port), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"auditor serve exited: {self.process.stdout.read()}")
            try:
                urllib.request.urlopen(self.url + "/static/serve.css", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("auditor serve did not start within 60 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def server(built):
    running = Server(built.db, "--trust", str(built.keys.root), "--max-upload-mb", "2")
    try:
        yield running
    finally:
        running.stop()
