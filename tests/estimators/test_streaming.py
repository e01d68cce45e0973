"""``aa`` and ``naive`` streamed one parameter tensor at a time (issue 20, docs/scaling.md):
the same embeddings as the whole-model float64 computation, float32 within its stated
tolerance, and the lazy checkpoint reader's checks."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from auditor.errors import CheckpointError, EstimatorError
from auditor.estimators import get_estimator
from auditor.lineage.checkpoints import LazyCheckpoint, save_tensors
from tests.support.recorded import record_adamw, record_sgd


def _gap(a, b) -> float:
    """The largest difference over all stages and tensors, relative to the largest |entry|."""
    scale = max(float(t.abs().max()) for vector in a.vectors for t in vector.values())
    return max(float((t.double() - b.vectors[k][name].double()).abs().max())
               for k, vector in enumerate(a.vectors) for name, t in vector.items()) / scale


@pytest.mark.parametrize("record", [record_adamw, record_sgd])
def test_streamed_aa_matches_the_whole_model_computation(tmp_path, record):
    task, rec = record(tmp_path)
    whole = get_estimator("aa", stream=False).prepare(rec.lineage, tmp_path, task)
    streamed = get_estimator("aa").prepare(rec.lineage, tmp_path, task)
    assert [sorted(v) for v in streamed.vectors] == [sorted(v) for v in whole.vectors]
    assert all(t.dtype == torch.float64 for v in streamed.vectors for t in v.values())
    assert _gap(streamed, whole) <= 1e-12
    assert streamed.config_hash == whole.config_hash  # stream is not in the config hash


@pytest.mark.parametrize("record", [record_adamw, record_sgd])
def test_float32_stays_within_its_stated_tolerance(tmp_path, record):
    task, rec = record(tmp_path)
    exact = get_estimator("aa").prepare(rec.lineage, tmp_path, task)
    single = get_estimator("aa", precision="float32").prepare(rec.lineage, tmp_path, task)
    assert all(t.dtype == torch.float32 for v in single.vectors for t in v.values())
    assert _gap(single, exact) <= 1e-5
    assert single.config_hash != exact.config_hash


def test_streamed_naive_is_bitwise_the_whole_model_difference(tmp_path):
    task, rec = record_sgd(tmp_path)
    whole = get_estimator("naive", stream=False).prepare(rec.lineage, tmp_path, task)
    streamed = get_estimator("naive").prepare(rec.lineage, tmp_path, task)
    for k, vector in enumerate(whole.vectors):
        assert sorted(vector) == sorted(streamed.vectors[k])
        for name, tensor in vector.items():
            assert torch.equal(tensor, streamed.vectors[k][name])
    assert streamed.config_hash == whole.config_hash
    assert get_estimator("naive", precision="float32").config_hash != whole.config_hash


@pytest.mark.parametrize("settings, message", [
    ({"precision": "float16"}, "precision must be float64 or float32"),
    ({"precision": "float32", "stream": False}, "float32 needs stream=True"),
    ({"stream": "yes"}, "stream must be true or false"),
    ({"spill_above_mb": -1}, "spill_above_mb must be a number"),
    ({"workspace_mb": -1}, "workspace_mb must be a number"),
    ({"workspace_mb": True}, "workspace_mb must be a number"),
])
@pytest.mark.parametrize("name", ["aa", "naive"])
def test_precision_and_stream_settings_are_checked(name, settings, message):
    with pytest.raises(EstimatorError, match=message):
        get_estimator(name, **settings)


def test_lazy_checkpoint_checks_the_hash_and_each_tensor(tmp_path):
    grid = torch.arange(12.0).reshape(4, 3)
    ref = save_tensors({"w": torch.ones(3), "b": torch.tensor([1.0, float("nan")]),
                        "grid": grid}, tmp_path / "ckpt", tmp_path)
    reader = LazyCheckpoint(ref, tmp_path)
    assert reader.keys() == {"w", "b", "grid"}
    assert torch.equal(reader.get("w"), torch.ones(3))
    assert reader.get("missing") is None and reader.shape("missing") is None
    assert reader.shape("grid") == (4, 3)
    assert torch.equal(reader.get("grid", slice(1, 3)), grid[1:3])  # a chunk of rows
    with pytest.raises(CheckpointError, match="NaN or Inf values in 'b'"):
        reader.get("b")
    with pytest.raises(CheckpointError, match="NaN or Inf values in 'b'"):
        reader.get("b", slice(1, 2))
    path = tmp_path / ref.uri
    save_file({"w": torch.zeros(3)}, str(path))  # replaced after recording
    with pytest.raises(CheckpointError, match="does not match its recorded hash"):
        LazyCheckpoint(ref, tmp_path)


@pytest.mark.parametrize("name", ["aa", "naive"])
def test_embeddings_on_disk_score_and_save_like_those_in_memory(tmp_path, name):
    from auditor.behaviours.library import probe_loss
    from auditor.estimators.embeddings import load_embeddings, save_embeddings
    from auditor.estimators.shards import ShardVector
    from auditor.lineage.counterfactual import final_model

    task, rec = record_adamw(tmp_path)
    behaviour = probe_loss("probe", task.x[:16], task.y[:16])
    model = final_model(rec.lineage, tmp_path, task)
    held = get_estimator(name)  # tiny: below spill_above_mb
    on_disk = get_estimator(name, spill_above_mb=0)
    memory = held.prepare(rec.lineage, tmp_path, task)
    disk = on_disk.prepare(rec.lineage, tmp_path, task)
    assert all(isinstance(v, ShardVector) for v in disk.vectors)
    assert not any(isinstance(v, ShardVector) for v in memory.vectors)
    # the product runs in the model's float32 per parameter block: rounding of float32 only
    assert on_disk.score(disk, [behaviour], model).effects == pytest.approx(
        held.score(memory, [behaviour], model).effects, rel=1e-6, abs=1e-9)
    saved = load_embeddings(save_embeddings(disk, tmp_path / "e.safetensors").path)
    for k, vector in enumerate(memory.vectors):
        for key, tensor in vector.items():
            assert torch.equal(saved.vectors[k][key], tensor)
    folder = disk.vectors[0].shards.folder
    del disk
    import gc
    gc.collect()
    assert not folder.exists()  # the shards go with the embeddings


@pytest.mark.parametrize("name, record", [("aa", record_adamw), ("aa", record_sgd),
                                          ("naive", record_adamw)])
def test_a_workspace_smaller_than_a_tensor_computes_it_in_chunks(tmp_path, name, record):
    """Chunks of rows sized to the workspace give the embeddings of whole tensors (the maps are
    elementwise), on disk chunk by chunk, and score like them."""
    from auditor.behaviours.library import probe_loss
    from auditor.lineage.counterfactual import final_model

    task, rec = record(tmp_path)
    whole = get_estimator(name).prepare(rec.lineage, tmp_path, task)
    tiny = get_estimator(name, workspace_mb=0.001)  # ~1 KiB: a few rows per chunk
    chunked = tiny.prepare(rec.lineage, tmp_path, task)
    assert _gap(chunked, whole) <= 1e-12
    on_disk = get_estimator(name, workspace_mb=0.001, spill_above_mb=0)
    disk = on_disk.prepare(rec.lineage, tmp_path, task)
    shards = disk.vectors[0].shards
    assert max(len(chunks) for chunks in shards.files.values()) > 1
    assert _gap(disk, whole) <= 1e-12  # read back whole from its chunks
    behaviour = probe_loss("probe", task.x[:16], task.y[:16])
    model = final_model(rec.lineage, tmp_path, task)
    assert on_disk.score(disk, [behaviour], model).effects == pytest.approx(
        tiny.score(whole, [behaviour], model).effects, rel=1e-6, abs=1e-9)
    assert tiny.config_hash == get_estimator(name).config_hash  # not in the config hash


def test_chunks_cover_every_row_within_the_workspace():
    from auditor.estimators.workspace import MiB, row_chunks, workspace_bytes

    assert row_chunks((10, 4), 40) == [None] and row_chunks((), 1) == [None]
    assert row_chunks((10, 4), 8) == [slice(r, r + 2) for r in range(0, 10, 2)]
    assert row_chunks((7,), 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert row_chunks((3, 100), 10) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # ≥ one row
    assert workspace_bytes(2, 10**9) == 2 * MiB  # set
    assert workspace_bytes(0, 10) == 1 * MiB and workspace_bytes(0, 10**12) == 256 * MiB
    assert workspace_bytes(0, 64 * MiB) == 64 * MiB  # auto: a quarter of the float32 model
    from auditor.estimators.shards import spills

    # embeddings spill by the workspace (default), by a number of MiB, or always (0)
    assert spills(4, 10**6, torch.float64, None, MiB) and not spills(4, 10**4, torch.float64,
                                                                     None, MiB)
    assert not spills(4, 10**6, torch.float64, 64.0, MiB) and spills(1, 1, torch.float32, 0, MiB)
