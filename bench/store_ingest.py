"""Score-row ingest into the DuckDB store: Arrow bulk insert vs executemany.

Prints rows/s for
  * ``Store.record_run`` with an Arrow table of ``--rows`` score rows (the store's path: cast,
    row digest for the event log, insert, events, one transaction),
  * a bare ``INSERT INTO stage_scores SELECT * FROM arrow`` (no digest), for the digest's cost,
  * ``executemany`` of a ``--sample`` of the same rows (extrapolated rows/s), the reference,
  * ``verify_log`` over the stored rows,
and the ratios against executemany measured in the same run.

    PYTHONPATH=$PWD python bench/store_ingest.py [--rows 1000000] [--sample 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.factories

from auditor.store import Store  # noqa: E402
from tests.support.factories import make_scores, make_version  # noqa: E402


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def bench_store_path(folder: Path, rows, repeats: int) -> tuple[float, float]:
    """Best seconds for record_run with the Arrow table, then seconds for verify_log (over all
    ``repeats`` runs' rows, reported per row)."""
    with Store.open(folder / "store.duckdb") as store:
        store.add_version(make_version())
        seconds = min(_timed(lambda: store.record_run("bench", {}, scores=rows))
                      for _ in range(repeats))
        verify_seconds = _timed(lambda: store.verify_log().raise_if_tampered())
    return seconds, verify_seconds / repeats


def bench_bare_arrow(folder: Path, rows, repeats: int) -> float:
    with Store.open(folder / "bare.duckdb") as store:
        conn = store.conn
        conn.register("incoming", rows.append_column("run_id", [["r"] * rows.num_rows])
                      .select(store.scores().column_names))
        return min(_timed(lambda: conn.execute("INSERT INTO stage_scores SELECT * FROM incoming"))
                   for _ in range(repeats))


def bench_executemany(folder: Path, rows) -> float:
    columns = ["run_id", *rows.column_names]
    tuples = [("r", *row.values()) for row in rows.to_pylist()]
    with Store.open(folder / "many.duckdb") as store:
        sql = (f"INSERT INTO stage_scores ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        return _timed(lambda: store.conn.executemany(sql, tuples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for the Arrow paths")
    args = parser.parse_args()
    version = make_version()
    block = len(version.stages) * 4
    rows = make_scores(version, behaviours=4, repeat=max(1, args.rows // block))
    sample = rows.slice(0, args.sample)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_s, verify_s = bench_store_path(folder, rows, args.repeats)
        bare_s = bench_bare_arrow(folder, rows, args.repeats)
        many_s = bench_executemany(folder, sample)
    n = rows.num_rows
    many_rate = sample.num_rows / many_s
    print(f"rows: {n:,} (executemany sample: {sample.num_rows:,}; Arrow paths best of "
          f"{args.repeats})")
    print(f"store.record_run (Arrow + digest + log): {n / store_s:>12,.0f} rows/s  "
          f"{store_s:.3f} s  x{n / store_s / many_rate:,.0f} vs executemany")
    print(f"bare Arrow INSERT … SELECT:            {n / bare_s:>12,.0f} rows/s  "
          f"{bare_s:.3f} s  x{n / bare_s / many_rate:,.0f} vs executemany")
    print(f"executemany (extrapolated):            {many_rate:>12,.0f} rows/s  "
          f"{many_s:.3f} s for the sample")
    print(f"verify_log over the stored rows:       {n / verify_s:>12,.0f} rows/s  {verify_s:.3f} s")
    print(f"digest + log overhead vs bare insert:  x{store_s / bare_s:.2f} time")


if __name__ == "__main__":
    main()
