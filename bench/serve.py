"""Dashboard latency: the overview and version pages of ``auditor serve`` on a synthetic store of
1,000 versions and 1,000,000 score rows, against the plain DuckDB queries behind each page.

The store is written through the store's own API (lineage with ``add_version``, the score rows
as ONE Arrow table through ``record_run``, verdicts and policy rows of a gate run). The SQL each
page runs is captured by serving the page once in process with a recording connection; the
reference replays exactly those statements on an open read-only DuckDB connection (and, second
reference, on a fresh connection per page). Pages are timed over HTTP against a real
``auditor serve`` subprocess, in three ways, so that no row is only cache hits: the same page
repeated; distinct versions each requested once in a burst (first views: nothing of theirs was
read or drawn before); and requests spaced wider than the dashboard's idle window, so each one
opens the store again (after idle).

    PYTHONPATH=$PWD python bench/serve.py [--models 10] [--versions 100] [--stages 10]
        [--behaviours 100] [--repeats 15]

Prints the median milliseconds of each and the ratios page / plain query (goal: <= 3x) and
page / fresh connection.
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


def capture(db: Path, paths: list[str]) -> list[list]:
    """The statements the app runs to build each of ``paths`` (served once each, in process)."""
    from starlette.testclient import TestClient

    from auditor.serve import ServeSettings, create_app

    app = create_app(ServeSettings(db=db))
    reader = app.state.reader
    real_borrow = reader.borrow
    log: list = []

    @contextlib.contextmanager
    def recording_borrow():
        with real_borrow() as store:
            conn = store.conn
            store.conn = Recording(conn, log)
            try:
                yield store
            finally:
                store.conn = conn

    reader.borrow = recording_borrow
    captured = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for path in paths:
            log = []
            assert client.get(path).status_code == 200
            captured.append(log)
    return captured


def replay(conn, statements: list) -> None:
    for method, sql, params in statements:
        if method == "sql":
            conn.sql(sql, params=params).to_arrow_table()
        else:
            conn.execute(sql, params).fetchall()


def interleaved(runs: list[tuple], pause: float = 0.0) -> list[float]:
    """Median milliseconds of each of several actions, run in turn on the same inputs (page,
    then its references, then the next input), so that all of them meet the same load."""
    times: list[list[float]] = []
    for actions in runs:
        time.sleep(pause)
        row = []
        for action in actions:
            start = time.perf_counter()
            action()
            row.append(time.perf_counter() - start)
        times.append(row)
    return [statistics.median(column) * 1000 for column in zip(*times)]


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
        print(measure(db, keys, args.repeats))


def version_path(key: str) -> str:
    model, version = key.split("@")
    return f"/versions/{model}/{version}"


def measure(db: Path, keys: list[str], repeats: int) -> str:
    """Pages over HTTP against their statements replayed on plain DuckDB connections."""
    from auditor.serve.reader import IDLE_S

    # distinct versions, spread over the store: one for repeats, 4 x repeats seen once each
    step = max(1, len(keys) // (4 * repeats + 1))
    chosen = [version_path(keys[(k * step + len(keys) // 2) % len(keys)])
              for k in range(4 * repeats + 1)]
    statements = dict(zip(["/", *chosen], capture(db, ["/", *chosen])))
    groups = {"overview": ["/"] * repeats, "version": [chosen[0]] * repeats,
              "version, first view": chosen[1:repeats + 1],
              "overview after idle": ["/"] * repeats,
              "version after idle": chosen[repeats + 1:2 * repeats + 1]}
    second = groups | {"version, first view": chosen[2 * repeats + 1:3 * repeats + 1],
                       "version after idle": chosen[3 * repeats + 1:]}  # new to the server
    process, port = serve(db)
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(path):
        client.request("GET", path)
        response = client.getresponse()
        assert response.status == 200, response.status
        response.read()

    def fresh(path):
        with duckdb.connect(str(db), read_only=True) as conn:
            replay(conn, statements[path])

    results = {}
    try:
        with duckdb.connect(str(db), read_only=True) as conn:
            for path in ("/", chosen[0]):  # warm: the page's repeats and its plain reference
                get(path)
                replay(conn, statements[path])
            for name, paths in groups.items():
                pause = IDLE_S + 0.3 if "idle" in name else 0.0
                results[name] = interleaved(
                    [(lambda p=p: get(p), lambda p=p: replay(conn, statements[p]))
                     for p in paths], pause=pause)
        # a fresh connection only while no other is open in this process (DuckDB would hand
        # out the open database again); page again beside it, for the ratio under equal load
        for name, paths in second.items():
            pause = IDLE_S + 0.3 if "idle" in name else 0.0
            page, fresh_ms = interleaved([(lambda p=p: get(p), lambda p=p: fresh(p))
                                          for p in paths], pause=pause)
            results[name] += [fresh_ms, page]
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
    lines = [f"median of {repeats} HTTP GETs of auditor serve, milliseconds. Rows: the same page "
             "repeated; distinct versions each seen once in a burst (first views); requests "
             f"{IDLE_S + 0.3:g} s apart, after the dashboard let its connection go (after idle)",
             "plain: the page's statements on an open read-only DuckDB connection; fresh: on a "
             "new connection per page; each timed right after the page, on the same version "
             "(fresh in a second pass: page ms2)",
             f"{'page':<22}{'statements':>11}{'page ms':>10}{'plain ms':>10}{'ratio':>8}"
             f"{'page ms2':>10}{'fresh ms':>10}{'ratio':>8}"]
    for name, (page, plain, fresh_ms, page2) in results.items():
        lines.append(f"{name:<22}{len(statements[groups[name][0]]):>11}{page:>10.1f}"
                     f"{plain:>10.1f}{page / plain:>7.2f}x{page2:>10.1f}{fresh_ms:>10.1f}"
                     f"{page2 / fresh_ms:>7.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
