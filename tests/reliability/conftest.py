from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """A store with one imported version, copied fresh for every case."""
    from corpus import LINEAGE, write_lineage

    from auditor.cli import main

    work = tmp_path_factory.mktemp("template")
    db = work / "auditor.duckdb"
    assert main(["lineage", "import", str(write_lineage(work, LINEAGE.replace("version: v9", "version: v1"))), "--db", str(db)]) == 0
    return db
