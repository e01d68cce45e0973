"""Positioned reads of safetensors tensors and row ranges (auditor/lineage/rows.py)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from auditor.lineage.rows import SafetensorsRows


def test_rows_and_whole_tensors_read_as_safetensors_stores_them(tmp_path):
    tensors = {"f64": torch.randn(5, 3, dtype=torch.float64), "bf16": torch.randn(4, 2).bfloat16(),
               "scalar": torch.tensor(2.5), "ints": torch.arange(6).reshape(2, 3),
               "flags": torch.tensor([True, False]), "empty": torch.zeros(0, 4)}
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path), metadata={"note": "x"})
    reader = SafetensorsRows(path)
    for name, tensor in load_file(str(path)).items():
        assert torch.equal(reader.read(name), tensor) and reader.read(name).dtype == tensor.dtype
    assert torch.equal(reader.read("f64", slice(1, 4)), tensors["f64"][1:4])
    assert torch.equal(reader.read("bf16", slice(3, 9)), tensors["bf16"][3:])
    assert reader.read("f64", slice(5, 5)).shape == (0, 3)
    with pytest.raises(ValueError, match="contiguous"):
        reader.read("f64", slice(0, 4, 2))


def test_a_header_whose_offsets_do_not_match_the_shapes_is_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(ValueError, match="data offsets"):
        SafetensorsRows(path)
    path.write_bytes(struct.pack("<Q", 10**9) + header)
    with pytest.raises(ValueError, match="header longer"):
        SafetensorsRows(path)
