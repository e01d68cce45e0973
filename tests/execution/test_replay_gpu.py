"""Replay units and GPUs: a unit asks for a GPU only where the executor has GPUs to give and
the unit would use one (``device: cpu`` would not); the task trains on the device it got."""

import pytest

from auditor.execution.items import WorkItem
from auditor.execution.ray_executor import RayExecutor
from auditor.execution.replay_units import ReplayUnitItem
from auditor.execution.spec import ReplaySettings


def _unit(device: str, k: int = 0) -> ReplayUnitItem:
    return ReplayUnitItem("m@v", k, f"s{k}", 10, "", "file:///nowhere", (), "t:task",
                          "t:behaviours", device=device)


def test_a_unit_requests_a_gpu_only_when_there_is_one_and_it_would_use_it():
    executor = RayExecutor()
    assert executor.gpus_for(_unit("auto"), 0.0) == 0.0  # no GPUs to give
    assert executor.gpus_for(_unit("auto"), 1.0) == 1.0
    assert executor.gpus_for(_unit("cuda:0"), 0.5) == 0.5
    assert executor.gpus_for(_unit("cpu"), 1.0) == 0.0  # pinned to CPU: none wasted
    item = WorkItem.__new__(WorkItem)  # estimator items keep asking whenever GPUs exist
    assert executor.gpus_for(item, 1.0) == 1.0


def test_the_replay_section_names_the_device_and_refuses_a_bad_one():
    assert ReplaySettings().device == "auto"
    assert ReplaySettings(device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="device"):
        ReplaySettings(device="tpu")


@pytest.mark.ray
def test_without_gpus_replay_tasks_request_none_and_train_on_cpu(ray_session):
    import ray

    from tests.support.ray_probe import granted

    executor = RayExecutor()
    assert executor.gpus_per_task(ray) == 0.0
    outcomes = list(executor.map(granted, [_unit("auto", 0), _unit("cpu", 1)]))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert sorted(o.rows for o in outcomes) == [([], False, "cpu")] * 2
