from pathlib import Path

import pytest

from auditor.store import Store
from tests.support.factories import make_version


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "auditor.duckdb"


@pytest.fixture
def store(db_path: Path):
    with Store.open(db_path) as opened:
        yield opened


@pytest.fixture
def version():
    return make_version()
