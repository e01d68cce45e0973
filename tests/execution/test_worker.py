"""The worker is a pure function of plain data: same input, same rows; checkpoints are named by
URI and sha256 and checked before anything is loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tinyaudit import spec_dict

from auditor.errors import CheckpointError
from auditor.execution.items import root_path
from auditor.execution.planner import plan_audit, with_lineage
from auditor.execution.rows import SCORE_SCHEMA
from auditor.execution.spec import AuditSpec
from auditor.execution.worker import attribute_rows, run_item
from auditor.store import Store


@pytest.fixture
def item(tiny_store):
    db, _ = tiny_store
    with Store.open(db) as store:
        plan = plan_audit(AuditSpec.model_validate(spec_dict()), store)
        return next(with_lineage(plan.todo[:1], store))


def test_same_input_same_rows(item):
    first = attribute_rows(item.version_json, item.root_uri, item.task, item.behaviours,
                           item.estimator, item.settings)
    assert first.schema == SCORE_SCHEMA and first.num_rows == 3 * 2
    assert run_item(item).equals(first)


def test_checkpoint_hash_mismatch_is_refused(item):
    uri, sha = item.checkpoints[0]
    wrong = dataclasses.replace(item, checkpoints=((uri, "f" * 64), *item.checkpoints[1:]))
    with pytest.raises(CheckpointError, match="does not match"):
        run_item(wrong)


def test_root_uris():
    assert root_path("file:///mnt/check%20points/v1") == Path("/mnt/check points/v1")
    assert root_path("/mnt/checkpoints") == Path("/mnt/checkpoints")
    with pytest.raises(CheckpointError, match="mount the shared checkpoint storage"):
        root_path("s3://bucket/digits/v1")
