"""Fixtures of the policy tests: a real DuckDB store, policies written to files."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # gatehelpers

from auditor.policy.load import LoadedPolicy, load_policy  # noqa: E402
from auditor.store import Store  # noqa: E402


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "gate.duckdb") as opened:
        yield opened


@pytest.fixture
def write_policy(tmp_path):
    """Write YAML (dedented) to a file and load it."""
    counter = iter(range(10_000))

    def write(text: str) -> LoadedPolicy:
        path = tmp_path / f"policy-{next(counter)}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return load_policy(path)

    return write
