"""The ``device`` setting: CPU numbers unchanged, a clear error without CUDA, batches moved whole,
and the config hash independent of the device. (CUDA itself is checked by bench/gpu_check.py.)"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

from auditor.behaviours.library import probe_loss
from auditor.errors import EstimatorError
from auditor.estimators import ESTIMATORS, attribute, get_estimator
from auditor.estimators.device import DeviceTask, device_transparent, resolve_device, to_device
from auditor.lineage.counterfactual import final_model
from tests.support.recorded import record_adamw, record_sgd

CHECKED = ("aa", "aa-hessian", "naive", "replay")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _behaviours(task):
    return [probe_loss("probe", task.x[:16], task.y[:16]),
            probe_loss("other", task.x[16:40], task.y[16:40], direction="benefit")]


@pytest.mark.parametrize("name", CHECKED)
def test_cpu_device_gives_the_default_numbers_on_cpu(tmp_path, name):
    task, rec = record_sgd(tmp_path)
    default = attribute(rec.lineage, tmp_path, task, _behaviours(task), name)
    on_cpu = attribute(rec.lineage, tmp_path, task, _behaviours(task), name, device="cpu")
    assert default.config_hash == on_cpu.config_hash
    if torch.cuda.is_available():  # "auto" ran on CUDA: the same numbers up to rounding
        np.testing.assert_allclose(default.effects, on_cpu.effects, rtol=1e-4, atol=1e-7)
        return
    assert np.array_equal(default.effects, on_cpu.effects)
    assert default.metric_values == on_cpu.metric_values


@pytest.mark.parametrize("name", ["aa-hessian", "replay"])
def test_device_task_path_keeps_the_numbers(tmp_path, name):
    """The wrapper and the device-transparent forward (used off CPU) change nothing on CPU."""
    task, rec = record_adamw(tmp_path)
    plain = attribute(rec.lineage, tmp_path, task, _behaviours(task), name, device="cpu")
    wrapped = DeviceTask(task, torch.device("cpu"))
    through = attribute(rec.lineage, tmp_path, wrapped, _behaviours(task), name, device="cpu")
    assert np.array_equal(plain.effects, through.effects)


@no_cuda
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_cuda_without_cuda_is_a_clear_error(tmp_path, name):
    task, rec = record_sgd(tmp_path)
    with pytest.raises(EstimatorError, match="CUDA is not available"):
        attribute(rec.lineage, tmp_path, task, _behaviours(task), name, device="cuda")


@no_cuda
def test_device_values():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(EstimatorError, match="CUDA is not available"):
        resolve_device("cuda:1")
    with pytest.raises(EstimatorError, match="device must be one of"):
        get_estimator("aa", device="gpu")


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_config_hash_does_not_depend_on_the_device(name):
    hashes = {get_estimator(name, device=d).config_hash for d in ("auto", "cpu", "cuda", "cuda:3")}
    assert hashes == {get_estimator(name).config_hash}


Pair = namedtuple("Pair", "inputs labels")


def test_to_device_moves_every_tensor_of_a_nested_batch():
    batch = {"x": (torch.ones(2), [torch.zeros(3), 5]), "pair": Pair(torch.ones(1), "tag"),
             "ids": [1, 2]}
    moved = to_device(batch, "meta")
    assert moved["x"][0].device.type == "meta" and moved["x"][1][0].device.type == "meta"
    assert moved["x"][1][1] == 5 and moved["ids"] == [1, 2]
    assert isinstance(moved["pair"], Pair) and moved["pair"].labels == "tag"
    assert moved["pair"].inputs.device.type == "meta"
    assert batch["x"][0].device.type == "cpu"  # the original is untouched


class _Where(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, *, extra=None):
        return {"x": str(x.device), "extra": str(extra.device)}


def test_device_transparent_forward_moves_inputs_to_the_model():
    model = device_transparent(_Where().to("meta"))
    seen = model(torch.ones(2), extra=torch.ones(1))
    assert seen == {"x": "meta", "extra": "meta"}


def test_models_built_by_a_device_task_answer_cpu_probes_on_cpu(tmp_path):
    task, rec = record_sgd(tmp_path)
    model = final_model(rec.lineage, tmp_path, DeviceTask(task, torch.device("cpu")))
    out = model(task.x[:4])
    assert out.device.type == "cpu" and out.dtype == torch.float32
