"""Where the tests and the repository are, and the PYTHONPATH of subprocesses and Ray workers."""

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# Ray workers and subprocesses import this worktree's auditor, ``tests.support`` (from ROOT) and
# the execution tests' tiny audit modules named in audit specs (``tinyaudit:...``).
WORKER_PATH = os.pathsep.join([str(ROOT), str(TESTS / "execution")])
