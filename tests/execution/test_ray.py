"""The Ray executor on a real local Ray instance: same rows as local, retries of dead workers,
and a driver killed mid-audit that resumes without duplicates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from exec_helpers import attribution_runs, duplicate_keys, score_rows
from tinyaudit import spec_dict

from auditor import api
from auditor.execution.ray_executor import RayExecutor
from auditor.execution.spec import AuditSpec
from tests.support.paths import ROOT

pytestmark = pytest.mark.ray

SPEC = AuditSpec.model_validate(spec_dict())
ROWS_PER_VERSION = 3 * 2


def test_local_and_ray_write_identical_rows(ray_session, tiny_store, tmp_path):
    db, keys = tiny_store
    ray_db = tmp_path / "ray.duckdb"
    shutil.copy(db, ray_db)
    local = api.run_audit(SPEC, db=db, executor="local", progress=False)
    remote = api.run_audit(SPEC, db=ray_db, executor=RayExecutor(), progress=False)
    assert (local.done, remote.done, remote.failed) == (6, 6, 0)
    assert score_rows(ray_db) == score_rows(db)
    assert len(score_rows(db)) == len(keys) * ROWS_PER_VERSION
    assert remote.top_blamed == local.top_blamed


def test_a_worker_that_dies_is_retried(ray_session, tiny_store):
    db, keys = tiny_store
    crash = ray_session.hooks / "crash-once"
    crash.touch()
    try:
        summary = api.run_audit(SPEC, db=db, executor=RayExecutor(max_retries=2),
                                progress=False)
        assert not crash.exists()  # a worker consumed the hook and died
    finally:
        crash.unlink(missing_ok=True)
    assert (summary.done, summary.failed) == (6, 0)
    rows = score_rows(db)
    assert len(rows) == len(keys) * ROWS_PER_VERSION and not duplicate_keys(rows)
    assert len(attribution_runs(db)) == 6


def test_without_retries_the_dead_worker_fails_its_item(ray_session, tiny_store):
    db, keys = tiny_store
    crash = ray_session.hooks / "crash-once"
    crash.touch()
    try:
        summary = api.run_audit(SPEC, db=db, executor=RayExecutor(max_retries=0),
                                progress=False)
    finally:
        crash.unlink(missing_ok=True)
    assert (summary.done, summary.failed) == (5, 1)
    assert "WorkerCrashedError" in next(iter(summary.failures.values()))
    rerun = api.run_audit(SPEC, db=db, executor=RayExecutor(), progress=False)
    assert (rerun.skipped, rerun.done) == (5, 1)
    assert len(score_rows(db)) == len(keys) * ROWS_PER_VERSION


def _start_driver(spec_path, db, address):
    command = [sys.executable, "-m", "auditor", "audit", str(spec_path), "--db", str(db),
               "--executor", "ray", "--address", address]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _wait_for_first_item(driver, deadline_s: float = 60.0) -> str:
    seen, started = [], time.monotonic()
    while time.monotonic() - started < deadline_s:
        line = driver.stderr.readline()
        if not line and driver.poll() is not None:
            break
        seen.append(line)
        if line.startswith("[1/"):
            return line
    raise AssertionError("the driver wrote no item: " + "".join(seen[-20:]))


def test_driver_killed_mid_audit_resumes_without_duplicates(ray_session, tiny_store, tmp_path):
    db, keys = tiny_store
    spec_path = tmp_path / "audit.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict()))
    delay = ray_session.hooks / "delay"
    delay.write_text("1.0")
    try:
        driver = _start_driver(spec_path, db, ray_session.address)
        try:
            _wait_for_first_item(driver)
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=30)
            driver.stderr.close()
    finally:
        delay.unlink(missing_ok=True)
    stored = len(attribution_runs(db))
    assert 1 <= stored < len(keys)
    assert not attribution_runs(db, "running")
    summary = api.run_audit(SPEC, db=db, executor=RayExecutor(), progress=False)
    assert (summary.skipped, summary.done, summary.failed) == (stored, len(keys) - stored, 0)
    rows = score_rows(db)
    assert len(rows) == len(keys) * ROWS_PER_VERSION and not duplicate_keys(rows)
