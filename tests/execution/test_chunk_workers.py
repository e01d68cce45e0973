"""A version's tensors spread over several Ray workers (``aa``'s ``workers`` setting,
docs/scaling.md#several-workers): the chunks are put back in their order, so the effects are
those of one worker bit for bit — in memory and spilled to disk, with the real local Ray."""

from __future__ import annotations

import numpy as np
import pytest

from auditor.errors import EstimatorError
from auditor.estimators import attribute, get_estimator
from auditor.estimators.parallel import groups
from auditor.execution.chunks import chunk_map_here, ray_chunk_map
from tests.support.merged import output_probes, record_merged


def test_groups_are_contiguous_and_cover_every_tensor():
    assert groups([4, 4, 4, 4], 2) == [range(0, 2), range(2, 4)]
    assert groups([10, 1, 1], 3) == [range(0, 1), range(1, 2), range(2, 3)]
    assert groups([5], 4) == [range(0, 1)]
    found = groups([3, 1, 4, 1, 5, 9, 2, 6], 3)
    assert [i for r in found for i in r] == list(range(8)) and len(found) <= 3
    with pytest.raises(EstimatorError, match="workers must be a whole number"):
        get_estimator("aa", workers=0)


def test_two_ray_workers_give_the_effects_of_one_bit_for_bit(ray_session, tmp_path):
    task, version = record_merged(tmp_path, train_a=True)  # renames, a merge, removed factors
    behaviours = output_probes(task)
    assert chunk_map_here() is ray_chunk_map  # the tests' local Ray instance is running
    for settings in ({}, {"workspace_mb": 1e-4, "spill_above_mb": 0}):  # in memory; on disk
        one = attribute(version, tmp_path, task, behaviours, "aa", **settings).effects
        spread = get_estimator("aa", workers=2, **settings)
        spread.chunk_map = ray_chunk_map
        two = attribute(version, tmp_path, task, behaviours, spread).effects
        assert np.array_equal(one, two), settings
        here = attribute(version, tmp_path, task, behaviours, "aa", workers=3, **settings)
        assert np.array_equal(one, here.effects), settings  # no map: the groups in turn
        assert spread.config_hash == get_estimator("aa").config_hash


def test_the_worker_spreads_an_items_groups_as_nested_ray_tasks(ray_session, tiny_store):
    """An audit item whose settings ask for workers=2, run as a Ray task: the worker hands
    the estimator the Ray map, its groups run as nested tasks, and the rows equal one
    worker's."""
    import ray
    from tinyaudit import spec_dict

    from auditor.execution.planner import plan_audit, with_lineage
    from auditor.execution.spec import AuditSpec
    from auditor.execution.worker import attribute_rows
    from auditor.store import Store

    db, _ = tiny_store
    with Store.open(db) as store:
        plan = plan_audit(AuditSpec.model_validate(spec_dict()), store)
        item = next(with_lineage(plan.todo[:1], store))
    args = (item.version_json, item.root_uri, item.task, item.behaviours, "aa")
    one = attribute_rows(*args, {})
    two = ray.get(ray.remote(attribute_rows).remote(*args, {"workers": 2}))
    assert two.equals(one)
