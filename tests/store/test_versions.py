from datetime import datetime, timezone

import pytest

from auditor.errors import InputError, StoreError
from auditor.store import Store
from tests.support.factories import make_scores, make_version


def test_version_round_trips_through_the_file(db_path, version):
    with Store.open(db_path) as store:
        assert store.add_version(version, source="lineage.json") is True
    with Store.open(db_path, read_only=True) as store:
        assert store.get_version("tiny@v1") == version
        stages = store.query("SELECT stage_index, stage_id, kind, convention, steps, "
                             "theta_end_sha256 FROM stages ORDER BY stage_index")
    assert [row["stage_id"] for row in stages] == ["s0", "s1", "s2"]
    assert stages[1]["theta_end_sha256"] == version.stages[1].theta_end.sha256
    assert stages[2]["steps"] == version.stages[2].steps


def test_lineage_is_flattened_into_datasets_and_checkpoints(store, version):
    store.add_version(version)
    datasets = store.query("SELECT stage_id, name, records, tags FROM datasets ORDER BY stage_id")
    assert datasets[0] == {"stage_id": "s0", "name": "data-0", "records": 100,
                           "tags": ["synthetic"]}
    roles = store.query("SELECT role, count(*) AS n FROM checkpoints GROUP BY role ORDER BY role")
    # three stages each with theta_start/end and optimizer_end; s1, s2 also optimizer_start
    assert roles == [{"role": "optimizer_end", "n": 3}, {"role": "optimizer_start", "n": 2},
                     {"role": "theta_end", "n": 3}, {"role": "theta_start", "n": 3}]


def test_adding_the_same_lineage_again_is_a_no_op(store, version):
    store.add_version(version)
    events = len(store.events())
    assert store.add_version(make_version()) is False
    assert len(store.events()) == events
    assert store.query("SELECT count(*) AS n FROM versions") == [{"n": 1}]
    assert store.query("SELECT count(*) AS n FROM models") == [{"n": 1}]


def test_a_different_lineage_under_the_same_key_is_refused(store, version):
    store.add_version(version)
    with pytest.raises(StoreError, match="tiny@v1 is already recorded .* different lineage"):
        store.add_version(make_version(description="retrained"))


def test_unknown_or_malformed_keys_give_clear_errors(store):
    with pytest.raises(StoreError, match="version tiny@v9 is not in the store"):
        store.get_version("tiny@v9")
    with pytest.raises(InputError, match="model@version"):
        store.get_version("tiny")


def _at(month: int, day: int = 1) -> datetime:
    return datetime(2026, month, day, tzinfo=timezone.utc)


def test_list_versions_filters_by_model_and_period(store):
    for model, name, month in [("a", "v1", 9), ("a", "v2", 10), ("a", "v3", 12), ("b", "v1", 11)]:
        store.add_version(make_version(model, name, created_at=_at(month)))
    q4 = store.list_versions(period="2026-Q4")
    assert [v.key for v in q4] == ["a@v2", "a@v3", "b@v1"]
    assert [v.key for v in store.list_versions(model="a", period="2026-12")] == ["a@v3"]
    assert len(store.list_versions()) == 4
    with pytest.raises(InputError, match="2026-Q5"):
        store.list_versions(period="2026-Q5")


def test_previous_version_is_the_latest_earlier_one_with_matching_scores(store):
    versions = [make_version("m", f"v{i}", created_at=_at(9 + i)) for i in range(1, 4)]
    for v in versions:
        store.add_version(v)
    store.record_run("audit", {}, scores=make_scores(versions[0], config_hash="cfgA"))
    store.record_run("audit", {}, scores=make_scores(versions[1], config_hash="cfgB"))
    assert store.previous_version("m@v3").key == "m@v2"
    assert store.previous_version("m@v3", "sgd-tracin", "cfgA").key == "m@v1"
    assert store.previous_version("m@v3", "other-estimator") is None
    assert store.previous_version("m@v1") is None
