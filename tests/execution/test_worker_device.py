"""The worker asks for CUDA only when Ray granted its task a GPU, and never overrides a setting."""

from __future__ import annotations

import pytest

from auditor.execution.worker import ray_granted_gpus, with_granted_device


def test_no_ray_no_device_setting():
    assert not ray_granted_gpus()
    assert with_granted_device({"plugin": True}) == {"plugin": True}


def test_an_explicit_device_is_kept():
    assert with_granted_device({"device": "cpu"}) == {"device": "cpu"}


@pytest.mark.ray
def test_ray_task_without_gpus_keeps_the_default(ray_session):
    import ray

    @ray.remote(num_cpus=1, num_gpus=0)
    def settings_in_task():
        return ray_granted_gpus(), with_granted_device({"mode": "forward"})

    assert ray.get(settings_in_task.remote()) == (False, {"mode": "forward"})
