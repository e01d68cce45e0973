"""Fixtures of the execution tests: tiny recorded versions in a store (the session's one real
local Ray instance, ``ray_session``, is in tests/conftest.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

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
