"""Devices in Ray tasks: ``auto`` follows the GPUs Ray granted; ``device`` in an audit spec's
estimator_settings: a clear failure without CUDA, same rows on CPU."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from exec_helpers import score_rows
from tinyaudit import spec_dict

from auditor.cli import main


@pytest.mark.ray
def test_a_ray_task_without_gpus_resolves_auto_to_cpu(ray_session):
    """Ray hides the GPUs from a task granted none, so the estimators' ``auto`` default runs it
    on CPU, and ``replay`` keeps its CPU default in any task."""
    import ray

    @ray.remote(num_cpus=1, num_gpus=0)
    def devices_in_task():
        from auditor.estimators import get_estimator
        from auditor.estimators.device import resolve_device

        return str(resolve_device("auto")), get_estimator("replay").device

    assert ray.get(devices_in_task.remote()) == ("cpu", "cpu")


def _spec(tmp_path, device: str):
    spec = tmp_path / f"audit-{device}.yaml"
    spec.write_text(yaml.safe_dump({**spec_dict(estimator="aa"),
                                    "estimator_settings": {"aa": {"device": device}}}))
    return str(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_audit_asking_for_cuda_without_it_exits_2_with_the_reason(tiny_store, tmp_path, capsys):
    db, keys = tiny_store
    code = main(["audit", _spec(tmp_path, "cuda"), "--db", str(db), "--quiet"])
    captured = capsys.readouterr()
    assert code == 2 and f"{len(keys)} failed" in captured.out
    assert "CUDA is not available" in captured.out + captured.err


def test_audit_on_cpu_stores_the_default_rows(tiny_store, tmp_path):
    """Same scores and estimator config hash (the work item's own hash names its settings)."""
    db, _ = tiny_store
    default_db = tmp_path / "default.duckdb"
    shutil.copy(db, default_db)
    default = tmp_path / "default.yaml"
    default.write_text(yaml.safe_dump(spec_dict(estimator="aa")))
    assert main(["audit", _spec(tmp_path, "cpu"), "--db", str(db), "--quiet"]) == 0
    assert main(["audit", str(default), "--db", str(default_db), "--quiet"]) == 0
    assert score_rows(db) == score_rows(default_db) and score_rows(db)
