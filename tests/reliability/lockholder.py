"""A second auditor process that holds a store open for writing, for lock tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_HOLDER = """
import sys, time
from auditor.store import Store
store = Store.open(sys.argv[1])
print("ready", flush=True)
time.sleep(600)
"""
HOLDERS: list[subprocess.Popen] = []


def hold(db: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert holder.stdout.readline().strip() == "ready"
    HOLDERS.append(holder)
    return holder


def release_all() -> None:
    while HOLDERS:
        holder = HOLDERS.pop()
        holder.kill()
        holder.wait(timeout=30)
