"""The worker: a pure function from plain data to score rows. It runs in the driver (local
executor) or in a Ray worker; it never opens the store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from auditor.errors import CheckpointError
from auditor.execution.items import WorkItem, root_path
from auditor.execution.rows import score_rows
from auditor.lineage.models import ModelVersion

# Test hooks: a folder where the file ``crash-once`` makes the next worker exit hard (once), and
# ``delay`` holds seconds each work item sleeps first. Unset in production.
HOOKS_ENV = "AUDITOR_TEST_HOOKS"


def attribute_rows(version_json: str, root_uri: str, task_spec: str, behaviours_spec: str,
                   estimator: str, settings: dict[str, Any]) -> pa.Table:
    """Score rows of one version under one estimator and one behaviour set."""
    return _attribute(ModelVersion.model_validate_json(version_json), root_uri, task_spec,
                      behaviours_spec, estimator, settings)


def _attribute(version: ModelVersion, root_uri: str, task_spec: str, behaviours_spec: str,
               estimator: str, settings: dict[str, Any]) -> pa.Table:
    from auditor.behaviours.library import load_behaviours
    from auditor.estimators import attribute, get_estimator
    from auditor.execution.chunks import chunk_map_here
    from auditor.task import load_task

    chosen = get_estimator(estimator, **settings)
    if getattr(chosen.settings, "workers", 1) > 1:  # its groups as Ray tasks, under Ray
        chosen.chunk_map = chunk_map_here()
    effects = attribute(version, root_path(root_uri), load_task(task_spec),
                        load_behaviours(behaviours_spec), chosen)
    return score_rows(effects)


def run_item(item: WorkItem) -> pa.Table:
    """Run one work item (the function the executors map over items)."""
    _test_hooks()
    version = ModelVersion.model_validate_json(item.version_json)  # parsed once
    _check_checkpoints(item, version)
    return _attribute(version, item.root_uri, item.task, item.behaviours, item.estimator,
                      item.settings)


def _check_checkpoints(item: WorkItem, version: ModelVersion) -> None:
    """The lineage's checkpoints must be the ones the planner sent (URI and sha256)."""
    named = dict(item.checkpoints)
    for stage in version.stages:
        for ref in (stage.theta_start, stage.theta_end):
            if named.get(ref.uri) != ref.sha256:
                raise CheckpointError(f"{item.key}: checkpoint {ref.uri} does not match the "
                                      "work item's hash list")


def _test_hooks() -> None:
    folder = os.environ.get(HOOKS_ENV)
    if not folder:
        return
    delay = Path(folder) / "delay"
    if delay.is_file():
        time.sleep(float(delay.read_text() or 0))
    try:
        os.unlink(Path(folder) / "crash-once")
    except FileNotFoundError:
        return
    os._exit(17)
