"""Fixtures of the execution tests: tiny recorded versions in a store, and ONE real local Ray
instance for the whole session (2 CPUs, no dashboard, a small object store)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

# Ray workers must import this worktree's auditor and the tests' tiny task modules.
WORKER_PATH = os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(HERE)])


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


@pytest.fixture(scope="session")
def tiny_store_template(tmp_path_factory):
    """A store with 6 tiny recorded versions (recorded once per session)."""
    from tinyaudit import record_many

    base = tmp_path_factory.mktemp("tiny")
    keys = record_many(base / "versions", 6, base / "template.duckdb")
    return base / "template.duckdb", keys


@pytest.fixture
def tiny_store(tmp_path, tiny_store_template):
    """A fresh copy of the template store (its versions' checkpoints stay where they are)."""
    template, keys = tiny_store_template
    db = tmp_path / "audit.duckdb"
    shutil.copy(template, db)
    return db, keys
