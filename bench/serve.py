"""Dashboard latency: the overview and version pages of ``auditor serve`` on a synthetic store of
1,000 versions and 1,000,000 score rows, against the plain DuckDB queries behind each page.

The store is written through the store's own API (lineage with ``add_version``, the score rows
as ONE Arrow table through ``record_run``, verdicts and policy rows of a gate run). The SQL each
page runs is captured by serving the page once in process with a recording connection; the
reference replays exactly those statements on an open read-only DuckDB connection (and, second
reference, on a fresh connection per page, which is what the dashboard does to leave writers
free). Pages are timed over HTTP against a real ``auditor serve`` subprocess.

    PYTHONPATH=$PWD python bench/serve.py [--models 10] [--versions 100] [--stages 10]
        [--behaviours 100] [--repeats 15]

Prints the median milliseconds of each and the ratio page / plain query (goal: <= 3x).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.factories

from auditor import api  # noqa: E402
from auditor.store import Store  # noqa: E402
from tests.support.factories import make_version  # noqa: E402


def build(db: Path, models: int, versions: int, stages: int, behaviours: int) -> list[str]:
    keys, score_parts, verdicts, policy_rows = [], [], [], []
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(0)
    names = np.array([f"behaviour-{b:03d}" for b in range(behaviours)], dtype=object)
    with Store.open(db) as store, store.transaction():
        for m in range(models):
            for i in range(versions):
                created = start + timedelta(days=(i * 730) // versions, hours=m)
                version = make_version(f"model-{m:02d}", f"v{i:03d}", stages=stages,
                                       created_at=created)
                store.add_version(version)
                keys.append(version.key)
                n = stages * behaviours
                stage_idx = np.tile(np.arange(stages, dtype=np.int32), behaviours)
                effect = rng.normal(0.0, 0.1, n)
                score_parts.append(pa.table({
                    "model": [version.model] * n, "version": [version.version] * n,
                    "stage_index": stage_idx,
                    "stage_id": np.array([s.id for s in version.stages], dtype=object)[stage_idx],
                    "stage_kind": np.array([s.kind for s in version.stages],
                                           dtype=object)[stage_idx],
                    "behaviour": np.repeat(names, stages), "direction": ["harm"] * n,
                    "estimator": ["aa"] * n, "estimator_version": ["1"] * n,
                    "convention": ["reset"] * n, "config_hash": ["cfg"] * n,
                    "effect": effect, "share": rng.random(n), "metric_value": rng.random(n)}))
                fail = bool(i % 7 == 3)
                verdicts.append({"model": version.model, "version": version.version,
                                 "policy_id": "default", "policy_hash": "h" * 64,
                                 "verdict": "FAIL" if fail else "PASS"})
                policy_rows.append({
                    "model": version.model, "version": version.version, "policy_id": "default",
                    "policy_version": "1", "policy_hash": "h" * 64, "rule_id": "harm-share",
                    "severity": "block", "behaviour": "behaviour-000", "stage_id": "s1",
                    "metric": "share", "comparator": ">", "threshold": 0.5,
                    "observed": 0.9 if fail else 0.1, "outcome": "fail" if fail else "pass",
                    "reason": "share > 0.5", "waiver_owner": None, "waiver_reason": None,
                    "waiver_expiry": None, "estimator": "aa", "config_hash": "cfg"})
        store.record_run("audit", {"bench": True}, scores=pa.concat_tables(score_parts))
        store.record_run("policy", {"policy_id": "default"},
                         policy_results=pa.Table.from_pylist(policy_rows), verdicts=verdicts)
    return keys


class Recording:
    """A DuckDB connection that notes every statement run through it."""

    def __init__(self, conn, log: list):
        self._conn, self._log = conn, log

    def execute(self, sql, params=None):
        self._log.append(("execute", sql, params))
        return self._conn.execute(sql, params)

    def sql(self, sql, params=None):
        self._log.append(("sql", sql, params))
        return self._conn.sql(sql, params=params)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def capture(db: Path, path: str) -> list:
    """The statements the app runs to build ``path`` (served once, in process)."""
    from starlette.testclient import TestClient

    from auditor.serve import ServeSettings, create_app

    log: list = []
    real_open = api.open_store

    @contextlib.contextmanager
    def recording_open(*args, **kwargs):
        with real_open(*args, **kwargs) as store:
            conn = store.conn
            store.conn = Recording(conn, log)
            try:
                yield store
            finally:
                store.conn = conn

    api.open_store = recording_open
    try:
        with TestClient(create_app(ServeSettings(db=db)), base_url="http://127.0.0.1") as client:
            assert client.get(path).status_code == 200
    finally:
        api.open_store = real_open
    return log


def replay(conn, statements: list) -> None:
    for method, sql, params in statements:
        if method == "sql":
            conn.sql(sql, params=params).to_arrow_table()
        else:
            conn.execute(sql, params).fetchall()


def median_ms(action, repeats: int) -> float:
    action()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(db: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "auditor", "serve", "--db", str(db),
                                "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               env=os.environ | {"PYTHONPATH": str(ROOT)})
    for _ in range(300):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        time.sleep(0.2)
    process.kill()
    raise SystemExit("auditor serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--versions", type=int, default=100, help="per model")
    parser.add_argument("--stages", type=int, default=10)
    parser.add_argument("--behaviours", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--db", type=Path, help="keep the synthetic store in this file and reuse "
                                                "it when it exists (default: a temp file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        if db.exists():
            with api.open_store(db, read_only=True) as store:
                keys = [v.key for v in store.list_versions()]
                rows = store.query("SELECT count(*) AS n FROM stage_scores")[0]["n"]
        else:
            keys = build(db, args.models, args.versions, args.stages, args.behaviours)
            rows = len(keys) * args.stages * args.behaviours
        print(f"store: {len(keys):,} versions, {rows:,} score rows "
              f"(ready in {time.perf_counter() - started:.0f} s)")
        model, version = keys[len(keys) // 2].split("@")
        pages = {"overview": "/", "version": f"/versions/{model}/{version}"}
        statements = {name: capture(db, path) for name, path in pages.items()}
        process, port = serve(db)
        try:
            http_ms = {}
            for name, path in pages.items():
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

                def get(client=client, path=path):
                    client.request("GET", path)
                    response = client.getresponse()
                    assert response.status == 200, response.status
                    response.read()

                http_ms[name] = median_ms(get, args.repeats)
                client.close()
        finally:
            process.terminate()
            process.wait(timeout=30)
        with duckdb.connect(str(db), read_only=True) as conn:
            plain_ms = {name: median_ms(lambda s=s: replay(conn, s), args.repeats)
                        for name, s in statements.items()}

        def fresh(s):
            with duckdb.connect(str(db), read_only=True) as conn:
                replay(conn, s)

        fresh_ms = {name: median_ms(lambda s=s: fresh(s), args.repeats)
                    for name, s in statements.items()}
    print(f"median of {args.repeats}, milliseconds; page = HTTP GET of auditor serve "
          "(fresh read-only connection, queries, HTML)")
    print(f"{'page':<10}{'statements':>11}{'page ms':>10}{'plain ms':>10}{'ratio':>8}"
          f"{'fresh-conn ms':>15}{'ratio':>8}")
    for name in pages:
        print(f"{name:<10}{len(statements[name]):>11}{http_ms[name]:>10.1f}"
              f"{plain_ms[name]:>10.1f}{http_ms[name] / plain_ms[name]:>7.2f}x"
              f"{fresh_ms[name]:>15.1f}{http_ms[name] / fresh_ms[name]:>7.2f}x")


if __name__ == "__main__":
    main()
