"""Where the tests and the repository are (a plain module: importing ``conftest`` by name picks
whichever conftest.py comes first on sys.path)."""

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# Ray workers must import this worktree's auditor and the tests' tiny task modules.
WORKER_PATH = os.pathsep.join([str(ROOT), str(TESTS), str(TESTS / "execution")])
