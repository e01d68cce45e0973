"""Crash trials: SIGKILL an ``auditor audit`` process at a seeded random moment, then check the
store and finish the audit; the scores must equal those of an uninterrupted run.

Shared by tests/reliability/test_crash.py and bench/faults.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.paths import TESTS
from tests.support.paths import WORKER_PATH as ENV_PATH

sys.path.insert(0, str(TESTS / "execution"))  # tinyaudit: the tiny versions and behaviours
SCORE_COLUMNS = ", ".join(f"s.{c}" for c in (
    "model", "version", "stage_index", "stage_id", "behaviour", "estimator", "config_hash",
    "effect", "share", "metric_value"))


@dataclass(frozen=True)
class Trial:
    seed: int
    kill_after_s: float
    runs_complete_at_kill: int
    store_opens: bool
    log_intact: bool
    no_partial_run: bool
    same_scores: bool

    @property
    def recovered(self) -> bool:
        return self.store_opens and self.log_intact and self.no_partial_run and self.same_scores


def make_fixture(folder: Path, versions: int = 6) -> tuple[Path, Path]:
    """A template store with tiny recorded versions, and the audit spec for them."""
    from tinyaudit import record_many, spec_dict

    db = folder / "template.duckdb"
    record_many(folder / "versions", versions, db)
    spec = folder / "audit.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(estimator="aa")))
    (folder / "hooks").mkdir()
    (folder / "hooks" / "delay").write_text(str(ITEM_DELAY_S))
    return db, spec


ITEM_DELAY_S = 0.25  # each item sleeps first, so kills also land between and inside items


def audit_command(spec: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "auditor", "audit", str(spec), "--db", str(db),
            "--executor", "local"]


def run_audit(spec: Path, db: Path) -> float:
    """An uninterrupted audit in a fresh process; returns its wall time."""
    started = time.perf_counter()
    subprocess.run(audit_command(spec, db), check=True, env=_env(spec), capture_output=True,
                   timeout=300)
    return time.perf_counter() - started


def finish_audit(spec: Path, db: Path) -> None:
    """Re-run the audit to completion in this process (stored items are skipped)."""
    from auditor import api

    api.run_audit(spec, db=db, executor="local", progress=False)


def scores(db: Path) -> list[tuple]:
    from auditor.store import Store

    with Store.open(db, read_only=True) as store:
        return [tuple(_comparable(v) for v in row.values()) for row in store.query(
            f"SELECT {SCORE_COLUMNS} FROM stage_scores s JOIN runs r USING (run_id) "
            f"WHERE r.status = 'complete' ORDER BY ALL")]


def _comparable(value):
    """NaN (a share where no stage adds harm) compares equal to itself."""
    return "NaN" if isinstance(value, float) and value != value else value


def crash_trial(seed: int, template: Path, spec: Path, work: Path, reference: list[tuple],
                longest_s: float) -> Trial:
    kill_after = random.Random(seed).uniform(0.0, longest_s)
    db = work / f"trial-{seed}.duckdb"
    shutil.copy(template, db)
    process = subprocess.Popen(audit_command(spec, db), env=_env(spec),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    opens, intact, no_partial, complete = _inspect(db)
    if opens:
        finish_audit(spec, db)
    return Trial(seed, kill_after, complete, opens, intact, no_partial,
                 opens and scores(db) == reference)


def _inspect(db: Path) -> tuple[bool, bool, bool, int]:
    """(store opens, event log intact, no run left half-done, complete runs)."""
    from auditor.errors import AuditorError
    from auditor.store import Store

    try:
        with Store.open(db, read_only=True) as store:
            intact = store.verify_log().ok
            statuses = store.query("SELECT status, count(*) AS n FROM runs GROUP BY status")
    except AuditorError:
        return False, False, False, 0
    counts = {row["status"]: row["n"] for row in statuses}
    return True, intact, counts.get("running", 0) == 0, counts.get("complete", 0)


def _env(spec: Path) -> dict[str, str]:
    from auditor.execution.worker import HOOKS_ENV

    return {**os.environ, "PYTHONPATH": ENV_PATH, HOOKS_ENV: str(spec.parent / "hooks")}
