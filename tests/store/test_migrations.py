import duckdb
import pytest

from auditor.errors import StoreError
from auditor.store import Store
from auditor.store.schema import MIGRATIONS, Migration


def _applied(db_path) -> list[str]:
    with duckdb.connect(str(db_path), read_only=True) as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY applied_at").fetchall()
    return [name for (name,) in rows]


def test_a_new_file_gets_every_named_migration_once(db_path):
    Store.open(db_path).close()
    Store.open(db_path).close()
    assert _applied(db_path) == [m.name for m in MIGRATIONS]


def test_an_older_file_is_migrated_forward_and_logs_each_step(db_path):
    Store.open(db_path, migrations=MIGRATIONS[:1]).close()
    assert _applied(db_path) == [MIGRATIONS[0].name]
    with Store.open(db_path) as store:
        kinds = [(e.kind, e.subject) for e in store.events()]
        assert kinds == [("schema.migrate", m.name) for m in MIGRATIONS]
        assert store.verify_log().ok
        assert store.query("SELECT count(*) AS n FROM stage_scores") == [{"n": 0}]


def test_a_file_from_a_newer_schema_is_refused(db_path):
    newer = (*MIGRATIONS, Migration("0099_from_the_future", "CREATE TABLE future (x INT)"))
    Store.open(db_path, migrations=newer).close()
    with pytest.raises(StoreError, match=r"newer schema .*0099_from_the_future.*upgrade"):
        Store.open(db_path)
    with pytest.raises(StoreError, match="newer schema"):
        Store.open(db_path, read_only=True)


def test_read_only_open_of_an_old_or_missing_file_is_a_clear_error(db_path, tmp_path):
    Store.open(db_path, migrations=MIGRATIONS[:2]).close()
    with pytest.raises(StoreError, match="needs schema migrations .*0003"):
        Store.open(db_path, read_only=True)
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "missing.duckdb", read_only=True)


def test_a_file_that_is_not_a_duckdb_database_is_a_store_error(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(junk)


def test_writes_on_a_read_only_store_are_refused(db_path, version):
    Store.open(db_path).close()
    with Store.open(db_path, read_only=True) as store, \
            pytest.raises(StoreError, match="read-only"):
        store.add_version(version)
    with duckdb.connect(str(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (0,)
