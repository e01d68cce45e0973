"""``aa-ggn`` with random projection: exact where the sketch is, logged = walked, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from auditor.errors import CheckpointError, EstimatorError, LineageError
from auditor.estimators import attribute, get_estimator
from auditor.lineage.checkpoints import resolve
from auditor.lineage.recorder import Recorder
from auditor.lineage.sketching.countsketch import CountSketch
from auditor.lineage.sketching.layout import ParamLayout
from auditor.lineage.sketching.spec import SketchSpec
from tests.support.linreg import linear_behaviours, record_linreg
from tests.support.recorded import record_adamw, record_sgd
from tests.support.tinytask import TinyTask


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _embeddings(version, root, task, **settings) -> torch.Tensor:
    estimator = get_estimator("aa-ggn", **settings)
    prepared = estimator.prepare(version, root, task)
    layout = ParamLayout.of(task.build_model())
    return torch.stack([layout.flatten(v) for v in prepared.vectors])


def _dense(sketch: CountSketch) -> torch.Tensor:
    """R as a (D, P) matrix, written out from its definition: R[bucket_j, j] = sign_j."""
    matrix = torch.zeros(sketch.width, len(sketch.bucket), dtype=torch.float64)
    matrix[sketch.bucket, torch.arange(len(sketch.bucket))] = sketch.sign
    return matrix


def _project(sketch: CountSketch, x: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    return sketch.project_blocks([x[..., span] for span in layout.offsets().values()])


def test_count_sketch_is_a_signed_permutation_where_tensors_fit_and_unbiased_elsewhere():
    layout = ParamLayout.of(torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.Linear(30, 2)))
    exact = CountSketch.build(layout, dim=5000, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, layout.total, dtype=torch.float64, generator=gen)
    assert exact.width == layout.total
    assert torch.allclose(exact.lift(_project(exact, x, layout)), x)  # RᵀR = I
    folded = CountSketch.build(layout, dim=64, seed=1)
    assert folded.width == 64 + 30 + 60 + 2  # at most 64 buckets per tensor
    assert torch.allclose(_project(folded, x, layout), x @ _dense(folded).T)
    assert torch.allclose(_project(folded, x.float(), layout), x @ _dense(folded).T, atol=1e-4)
    assert torch.allclose(folded.lift(x[:, :folded.width]), x[:, :folded.width] @ _dense(folded))
    y = x[0] + torch.randn(layout.total, dtype=torch.float64, generator=gen)  # x·y ≈ ‖x‖²
    sketches = [CountSketch.build(layout, 64, s) for s in range(400)]
    estimates = [float(_project(r, x[:1], layout) @ _project(r, y[None], layout).T)
                 for r in sketches]
    spread = float(x[0].norm() * y.norm()) / 8  # ~ ‖x‖‖y‖/√64 per draw
    assert abs(np.mean(estimates) - float(x[0] @ y)) < 4 * spread / np.sqrt(400)


@pytest.mark.parametrize("convention,split", [("carry", False), ("reset", False),
                                              ("carry", True)])
def test_exact_factors_in_a_sketch_that_fits_equal_replay(tmp_path, convention, split):
    """Linear model, squared loss, every tensor within the sketch, exact Gauss–Newton factors:
    the projected propagation is the full one, so it is replay (float64); ``split``: two
    optimizer groups (per-bucket coefficients instead of one scalar per step)."""
    task, version = record_linreg(tmp_path, convention, split_groups=split)
    behaviours = linear_behaviours(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    projected = attribute(version, tmp_path, task, behaviours, "aa-ggn", projection=64,
                          samples="exact").effects
    assert np.abs(truth).max() > 1e-3
    assert _relative(projected, truth) <= 1e-8
    folded = attribute(version, tmp_path, task, behaviours, "aa-ggn", projection=2,
                       samples="exact").effects
    assert _relative(folded, truth) > 1e-6  # the 5-weight tensor folded onto 2 buckets


def test_exact_factors_logged_by_the_recorder_equal_replay(tmp_path):
    task, version = record_linreg(tmp_path, "carry", sketch=SketchSpec(64, "exact"))
    assert all(s.curvature_sketch.samples == "exact" for s in version.stages[1:])
    behaviours = linear_behaviours(task)
    truth = attribute(version, tmp_path, task, behaviours, "replay").effects
    logged = attribute(version, tmp_path, task, behaviours, "aa-ggn", projection=64,
                       samples="exact").effects
    assert _relative(logged, truth) <= 1e-8


def test_logged_sketch_equals_the_walk_and_leaves_training_unchanged(tmp_path):
    spec = SketchSpec(dim=4, samples=3, seed=5)
    task, plain = record_sgd(tmp_path / "plain")
    _, rec = record_sgd(tmp_path / "sketched", sketch=spec)
    logged = rec.lineage
    # the factors' forward passes do not shift the loop's dropout masks
    assert [s.theta_end.sha256 for s in logged.stages] == \
        [s.theta_end.sha256 for s in plain.lineage.stages]
    assert logged.stages[0].curvature_sketch is None  # stage 1's curvature is never used
    sketches = [s.curvature_sketch for s in logged.stages[1:]]
    assert all(s is not None and s.dim == 4 and s.samples == 3 for s in sketches)
    assert json.loads(logged.model_dump_json())["stages"][1]["curvature_sketch"]["seed"] == 5
    # a lineage without a sketch serialises as before the field existed (its sha256 is what
    # the store compares when the version is added again)
    plain_json = plain.lineage.model_dump_json()
    assert "curvature_sketch" not in plain_json
    for text in (plain_json, logged.model_dump_json()):
        assert type(logged).model_validate_json(text).model_dump_json() == text

    class NoBatches(TinyTask):  # the logged path never runs a training step
        def batch(self, stage_id, ids):
            raise AssertionError("a training batch was fetched")

    from_log = _embeddings(logged, tmp_path / "sketched", NoBatches(), projection=4,
                           samples=3, sketch_seed=5)
    walked = _embeddings(plain.lineage, tmp_path / "plain", task, projection=4, samples=3,
                         sketch_seed=5)
    assert torch.allclose(from_log, walked, rtol=1e-5, atol=1e-7)
    other_seed = _embeddings(logged, tmp_path / "sketched", task, projection=4, samples=3,
                             sketch_seed=6)  # not logged: walks, with other draws
    assert not torch.allclose(other_seed, walked, rtol=1e-3, atol=1e-6)


def test_projected_estimate_tracks_the_full_gauss_newton(tmp_path):
    task, rec = record_sgd(tmp_path)
    version = rec.lineage
    full = _embeddings(version, tmp_path, task)
    exact = _embeddings(version, tmp_path, task, projection=1000, samples="exact")
    assert torch.allclose(exact, full, rtol=1e-4, atol=1e-6)
    # sampled factors (unbiased for G): the error shrinks with the samples, well below the
    # whole curvature correction (the H = 0 map of aa)
    prepared = get_estimator("aa").prepare(version, tmp_path, task)
    layout = ParamLayout.of(task.build_model())
    h0 = torch.stack([layout.flatten(v) for v in prepared.vectors])
    errors = [float((_embeddings(version, tmp_path, task, projection=1000, samples=m)[:-1]
                     - full[:-1]).norm()) for m in (4, 64)]
    assert errors[1] < errors[0] < float((h0[:-1] - full[:-1]).norm())
    assert errors[1] < 0.2 * float((h0[:-1] - full[:-1]).norm())


def test_a_changed_sketch_file_is_caught_by_its_hash(tmp_path):
    task, rec = record_sgd(tmp_path, sketch=SketchSpec(dim=4, samples=2))
    version = rec.lineage
    path = resolve(version.stages[1].curvature_sketch.file, tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256|hash"):
        _embeddings(version, tmp_path, task, projection=4, samples=2)
    assert version.stages[1].curvature_sketch.file in version.checkpoint_refs()


def test_projection_refusals(tmp_path):
    with pytest.raises(EstimatorError, match="projection works with"):
        get_estimator("aa-ggn", projection=8, plugin=True)
    with pytest.raises(EstimatorError, match="projection works with"):
        get_estimator("aa-ggn", projection=8, curvature="fisher")
    with pytest.raises(EstimatorError, match="positive number"):
        get_estimator("aa-ggn", projection=0)
    with pytest.raises(EstimatorError, match="samples must be"):
        get_estimator("aa-ggn", projection=8, samples="many")
    with pytest.raises(EstimatorError, match="set projection= too"):
        get_estimator("aa-ggn", samples=8)
    task, rec = record_adamw(tmp_path)
    with pytest.raises(EstimatorError, match="needs SGD.*sft"):
        _embeddings(rec.lineage, tmp_path, task, projection=8)
    with pytest.raises(LineageError, match="needs task="):
        Recorder(tmp_path / "r", TinyTask().build_model(), model_name="m", version="v",
                 sketch=SketchSpec())


def test_a_step_a_grad_scaler_skipped_leaves_no_sketch_row(tmp_path):
    """The sketch keeps one row per logged step: a skipped batch's factors are dropped with it,
    so the logged factors still equal the walk's."""
    from tests.support.recorded import DATA, _batches, train_amp

    task = TinyTask()
    torch.manual_seed(3)
    model = task.build_model()
    spec = SketchSpec(dim=8, samples=2)
    rec = Recorder(tmp_path, model, model_name="tiny", version="amp", task="tests.support.tinytask:tiny_task",
                   sketch=spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for stage_id, poisoned in (("pretrain", set()), ("sft", {1, 4})):
        with rec.stage(stage_id, kind="fine-tune", optimizer=opt, datasets=DATA):
            train_amp(rec, task, model, opt, scaler, _batches(6, len(poisoned)), poisoned)
    version = rec.lineage
    assert version.stages[1].steps == 4
    unsketched = version.model_copy(deep=True)
    unsketched.stages[1].curvature_sketch = None
    settings = dict(projection=8, samples=2, sketch_seed=0)
    assert torch.allclose(_embeddings(version, tmp_path, task, **settings),
                          _embeddings(unsketched, tmp_path, task, **settings),
                          rtol=1e-5, atol=1e-7)
