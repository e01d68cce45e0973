"""Fixtures of the dashboard tests: the demo-like store (built once per session), the app in
process (Starlette's test client) and the real thing (``auditor serve`` in a subprocess)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serve_data import Built, build  # noqa: E402
from serving import Server  # noqa: E402

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


@pytest.fixture(scope="session")
def server(built):
    running = Server(built.db, "--trust", str(built.keys.root), "--max-upload-mb", "2")
    try:
        yield running
    finally:
        running.stop()
