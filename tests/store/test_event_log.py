"""The event log detects rows edited, deleted or added with plain SQL behind the store's back."""

import duckdb
import pytest

from auditor.cli import main
from auditor.errors import TamperError
from auditor.store import Store
from auditor.store.schema import MIGRATIONS
from tests.support.factories import make_scores, make_version

M = len(MIGRATIONS)  # the store's first events are its migrations


@pytest.fixture
def audited(db_path):
    """A store holding two versions and a complete audit run of each; closed."""
    with Store.open(db_path) as store:
        for name in ("v1", "v2"):
            version = make_version(version=name)
            store.add_version(version)
            store.record_run("audit", {"v": name}, scores=make_scores(version, behaviours=3))
        run_id = store.query("SELECT run_id FROM stage_scores WHERE version = 'v1' LIMIT 1")
    return db_path, run_id[0]["run_id"]


def _tamper(db_path, sql: str) -> None:
    with duckdb.connect(str(db_path)) as conn:
        conn.execute(sql)


def _verify(db_path):
    with Store.open(db_path, read_only=True) as store:
        return store.verify_log()


def test_an_untouched_store_verifies(audited):
    db_path, _ = audited
    result = _verify(db_path)
    assert result.ok and result.problems == []
    assert result.events == M + 2 * 4  # migrations, then per version: add, start, scores, finish
    with Store.open(db_path, read_only=True) as store:
        assert result.head_hash == store.head_hash() == store.events()[-1].hash


def test_a_score_row_edited_with_plain_sql_is_caught(audited):
    db_path, run_id = audited
    _tamper(db_path, "UPDATE stage_scores SET effect = effect + 1e-9 "
                     "WHERE version = 'v1' AND stage_index = 1 AND behaviour = 'behaviour-2'")
    result = _verify(db_path)
    assert not result.ok
    assert result.problems == [f"stage_scores: rows of {run_id!r} were altered "
                               "(their digest differs from the log)"]
    with pytest.raises(TamperError, match="altered"):
        result.raise_if_tampered()


def test_a_deleted_score_row_is_caught(audited):
    db_path, run_id = audited
    _tamper(db_path, "DELETE FROM stage_scores WHERE version = 'v1' AND stage_index = 0 "
                     "AND behaviour = 'behaviour-0'")
    assert _verify(db_path).problems == [
        f"stage_scores: rows of {run_id!r} were deleted or added "
        "(the log records 9, the table holds 8)"]


def test_an_edited_version_row_and_stage_row_are_caught(audited):
    db_path, _ = audited
    _tamper(db_path, "UPDATE versions SET lineage_json = replace(lineage_json, 'pretrain', "
                     "'pre-train') WHERE version = 'v2'")
    _tamper(db_path, "UPDATE stages SET kind = 'alignment' "
                     "WHERE version = 'v1' AND stage_index = 0")
    problems = _verify(db_path).problems
    altered = "were altered (their digest differs from the log)"
    assert problems == [f"versions: rows of 'tiny@v2' {altered}",
                        f"stages: rows of 'tiny@v1' {altered}"]


def test_rows_added_outside_the_log_are_caught(audited):
    db_path, run_id = audited
    _tamper(db_path, f"INSERT INTO stage_scores SELECT * REPLACE ('forged' AS run_id) "
                     f"FROM stage_scores WHERE run_id = '{run_id}'")
    assert _verify(db_path).problems == [
        "stage_scores: 9 row(s) of 'forged' were written outside the log"]


def test_deleted_or_edited_events_break_the_chain(audited):
    db_path, _ = audited
    _tamper(db_path, f"UPDATE events SET payload_json = '{{\"rows\":1}}' WHERE seq = {M + 3}")
    _tamper(db_path, f"DELETE FROM events WHERE seq = {M + 5}")
    problems = _verify(db_path).problems
    assert f"event {M + 3} (stage_scores.insert " in problems[0] and "altered" in problems[0]
    assert problems[1] == f"event {M + 6}: follows event {M + 4} (events {M + 5}..{M + 5} are missing)"
    assert problems[2] == f"event {M + 6}: prev_hash does not match event {M + 4}'s hash"
    # event 8 added tiny@v2: its rows are now unaccounted for
    outside = [p for p in problems[3:] if "'tiny@v2' were written outside the log" in p]
    assert [p.split(":")[0] for p in outside] == ["versions", "stages", "datasets", "checkpoints"]


def test_a_run_status_flipped_with_plain_sql_is_caught(db_path):
    with Store.open(db_path) as store:
        run_id = store.start_run("audit", {})
        store.insert_scores(run_id, make_scores(make_version()))
        store.finish_run(run_id, "failed")
    _tamper(db_path, "UPDATE runs SET status = 'complete'")
    assert _verify(db_path).problems == [f"runs: rows of {run_id!r} were altered "
                                         "(their digest differs from the log)"]


def test_cli_log_verify_exit_codes_and_problem_list(audited, capsys):
    db_path, _ = audited
    assert main(["log", "verify", "--db", str(db_path)]) == 0
    assert f"log intact, {M + 2 * 4} events" in capsys.readouterr().out
    _tamper(db_path, "DELETE FROM stages WHERE stage_index = 2 AND version = 'v2'")
    assert main(["log", "verify", "--db", str(db_path)]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED, 1 problem(s)" in out
    assert ("stages: rows of 'tiny@v2' were deleted or added "
            "(the log records 3, the table holds 2)") in out
    assert main(["log", "verify", "--db", str(db_path.parent / "nope.duckdb")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_cli_log_show_lists_the_latest_events(audited, capsys):
    db_path, _ = audited
    assert main(["log", "show", "--db", str(db_path), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "stage_scores.insert" in out and "run.finish" in out
    assert "schema.migrate" not in out


def test_an_event_with_a_garbled_digest_is_reported_not_a_crash(audited):
    db_path, _ = audited
    _tamper(db_path, f"UPDATE events SET rows_digest = 'not json' WHERE seq = {M + 1}")
    problems = _verify(db_path).problems
    assert f"event {M + 1}: its rows_digest is unreadable" in problems
    assert any(p.startswith(f"event {M + 1} (version.add tiny@v1): its fields were altered")
               for p in problems)
