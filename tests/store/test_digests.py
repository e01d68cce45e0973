"""Row digests: a plain sha256 of the stored values in write order, blind to how Arrow happens
to chunk or encode them, sensitive to every value, null and order; old stores still verify."""

import duckdb
import pyarrow as pa
import pytest

from auditor.errors import StoreError
from auditor.store import Store
from auditor.store.digests import Digest, rows_digest
from auditor.store.events import append_event, utc_now
from auditor.store.legacy_digests import legacy_subject_digest
from tests.support.factories import make_scores, make_version


def _rows() -> pa.Table:
    return pa.table({
        "name": ["a", None, "", "ccc"],
        "count": pa.array([1, None, 0, 7], pa.int64()),
        "value": [0.5, None, -0.0, float("nan")],
        "flag": [True, None, False, True],
        "tags": pa.array([["x"], None, [], ["y", None]], pa.list_(pa.string())),
    })


def test_the_digest_ignores_chunking_slicing_and_dictionary_encoding():
    rows = _rows()
    chunked = pa.concat_tables([rows.slice(0, 1), rows.slice(1, 2), rows.slice(3)])
    assert chunked.column(0).num_chunks == 3
    encoded = rows.set_column(0, "name", rows.column("name").dictionary_encode())
    padded = pa.concat_tables([rows, rows]).slice(4, 4)
    assert rows_digest(rows) == rows_digest(chunked) == rows_digest(encoded) \
        == rows_digest(padded)
    assert rows_digest(rows).rows == 4


@pytest.mark.parametrize("column, index, value", [
    ("name", 1, ""),  # null vs empty string
    ("name", 2, None),
    ("count", 1, 0),  # null vs zero
    ("value", 2, 0.0),  # -0.0 vs 0.0
    ("value", 0, 0.5000000000000001),
    ("flag", 2, None),
    ("tags", 2, None),  # empty list vs null
    ("tags", 3, ["y", ""]),
])
def test_every_value_and_null_changes_the_digest(column, index, value):
    rows = _rows()
    values = rows.column(column).to_pylist()
    values[index] = value
    edited = rows.set_column(rows.schema.get_field_index(column), column,
                             pa.array(values, rows.schema.field(column).type))
    assert rows_digest(edited) != rows_digest(rows)


def test_moving_bytes_between_neighbouring_strings_changes_the_digest():
    assert rows_digest(pa.table({"s": ["ab", "c"]})) != rows_digest(pa.table({"s": ["a", "bc"]}))


def test_row_order_is_part_of_the_digest():
    rows = _rows()
    assert rows_digest(rows.take([1, 0, 2, 3])) != rows_digest(rows)


def test_digest_text_round_trips_and_rejects_garbage():
    digest = rows_digest(_rows())
    assert Digest.parse(str(digest)) == digest
    for text in ("4", "4:abc", "x:" + "0" * 64, "-1:" + "0" * 64):
        with pytest.raises(ValueError):
            Digest.parse(text)


def test_a_run_written_in_several_inserts_verifies_and_each_part_is_checked(db_path):
    version = make_version()
    scores = make_scores(version, behaviours=3)
    with Store.open(db_path) as store:
        store.add_version(version)
        run_id = store.start_run("audit", {})
        store.insert_scores(run_id, scores.slice(0, 5))
        store.insert_scores(run_id, scores.slice(5))
        store.finish_run(run_id)
        assert store.verify_log().ok
    with duckdb.connect(str(db_path)) as conn:  # edit a row of the second insert
        conn.execute("UPDATE stage_scores SET share = 0.5 WHERE rowid = "
                     "(SELECT max(rowid) FROM stage_scores)")
    with Store.open(db_path, read_only=True) as store:
        assert store.verify_log().problems == [
            f"stage_scores: rows of {run_id!r} were altered (their digest differs from the log)"]


def test_a_store_logged_with_legacy_additive_digests_still_verifies(db_path):
    """Stores written before ordered digests logged ``rows:lane:lane:lane:lane``."""
    with Store.open(db_path) as store:
        store.conn.execute("INSERT INTO behaviours (name, direction, description, probe_digest, "
                           "added_at) VALUES ('old', 'higher-is-worse', 'd', 'p', ?)", [utc_now()])
        columns = store.conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'behaviours' ORDER BY ordinal_position").fetchall()
        legacy = legacy_subject_digest(store.conn, "behaviours", "old", columns)
        text = ":".join(str(n) for n in (legacy.rows, *legacy.lanes))
        append_event(store.conn, actor="old-auditor", kind="behaviour.add", subject="old",
                     digests={"behaviours:old": text})
        assert store.verify_log().ok
        store.conn.execute("UPDATE behaviours SET description = 'edited' WHERE name = 'old'")
        assert store.verify_log().problems == [
            "behaviours: rows of 'old' were altered (their digest differs from the log)"]


def test_rows_of_narrower_or_untyped_arrow_types_are_cast_stored_and_verify(db_path):
    """Rows whose columns cast exactly to the table's types (a narrower float, an int64 for an
    INTEGER, an all-null column, dictionary strings) skip DuckDB's cast; what is digested is
    still exactly what verify reads back."""
    version = make_version()
    scores = make_scores(version, behaviours=2)
    odd = (scores
           .set_column(scores.schema.get_field_index("stage_index"), "stage_index",
                       scores.column("stage_index").cast(pa.int64()))
           .set_column(scores.schema.get_field_index("effect"), "effect",
                       scores.column("effect").cast(pa.float32()))
           .set_column(scores.schema.get_field_index("metric_value"), "metric_value",
                       pa.nulls(scores.num_rows))
           .set_column(scores.schema.get_field_index("behaviour"), "behaviour",
                       scores.column("behaviour").dictionary_encode()))
    with Store.open(db_path) as store:
        store.add_version(version)
        store.record_run("audit", {}, scores=odd)
        assert store.verify_log().ok
        stored = store.scores().sort_by([("stage_index", "ascending"), ("behaviour", "ascending")])
    expected = scores.sort_by([("stage_index", "ascending"), ("behaviour", "ascending")])
    assert stored.column("effect").to_pylist() == \
        expected.column("effect").cast(pa.float32()).cast(pa.float64()).to_pylist()
    assert stored.column("behaviour").to_pylist() == expected.column("behaviour").to_pylist()
    assert stored.column("metric_value").null_count == scores.num_rows


def test_an_integer_out_of_range_is_refused_with_duckdbs_message(db_path):
    version = make_version()
    scores = make_scores(version, behaviours=1)
    huge = scores.set_column(scores.schema.get_field_index("stage_index"), "stage_index",
                             pa.array([2**40] * scores.num_rows, pa.int64()))
    with Store.open(db_path) as store:
        store.add_version(version)
        head = store.head_hash()
        with pytest.raises(StoreError, match="cannot insert rows into stage_scores"):
            store.record_run("audit", {}, scores=huge)
        assert store.head_hash() == head and store.verify_log().ok
        store.record_run("audit", {}, scores=scores)  # chains onto the head before the failure
        started = [e for e in store.events() if e.kind == "run.start"]
        assert started[-1].prev_hash == head and store.verify_log().ok
