"""Fixtures shared by every room's tests (helpers are in the ``tests.support`` package)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import WORKER_PATH

# The tests' lineages name their tasks in these helper modules: allowed the way a user allows
# their own task code (docs/reliability.md). tests/reliability checks the refusals without it.
TEST_TASK_MODULES = "tests.support tinytask linreg scale_task"
os.environ.setdefault("AUDITOR_ALLOW_TASKS", TEST_TASK_MODULES)


@dataclass(frozen=True)
class RaySession:
    address: str
    hooks: Path  # AUDITOR_TEST_HOOKS folder: "crash-once" and "delay" files


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    import ray

    from auditor.execution.worker import HOOKS_ENV

    hooks = tmp_path_factory.mktemp("hooks")
    saved = {name: os.environ.get(name) for name in ("RAY_ADDRESS", "HOME", "PYTHONPATH",
                                                      HOOKS_ENV)}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.update({"HOME": str(tmp_path_factory.mktemp("home")), HOOKS_ENV: str(hooks),
                       "PYTHONPATH": WORKER_PATH})
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             object_store_memory=150 * 1024 * 1024, logging_level=logging.WARNING)
    try:
        yield RaySession(ray.get_runtime_context().gcs_address, hooks)
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
