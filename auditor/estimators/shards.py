"""Stage embeddings kept on disk one parameter tensor at a time (docs/scaling.md).

A streamed estimator hands each tensor's K embeddings to ``Shards.add``; they are written as one
safetensors file per tensor (keys ``"0"`` … ``"K-1"``) in a private temporary folder, removed
when the ``Shards`` object is collected. ``Shards.vectors()`` gives the K stage vectors as
read-only mappings by parameter name that read a tensor (memory-mapped) only when asked for it,
so neither the estimator nor scoring ever holds K whole-model vectors.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors.torch import safe_open, save_file


class Shards:
    def __init__(self, stages: int):
        self.stages = stages
        self._folder = tempfile.TemporaryDirectory(prefix="auditor-embeddings-")
        self.files: dict[str, Path] = {}

    @property
    def folder(self) -> Path:
        return Path(self._folder.name)

    def add(self, name: str, tensors: list[torch.Tensor]) -> None:
        path = self.folder / f"{len(self.files):06d}.safetensors"
        save_file({str(k): t.detach().to("cpu").contiguous() for k, t in enumerate(tensors)},
                  str(path))
        self.files[name] = path

    def read(self, name: str, k: int) -> torch.Tensor:
        with safe_open(str(self.files[name]), framework="pt") as handle:
            return handle.get_tensor(str(k))

    def vectors(self) -> list[ShardVector]:
        return [ShardVector(self, k) for k in range(self.stages)]


class ShardVector(Mapping):
    """Stage k's embedding by parameter name, read from the shards on access."""

    def __init__(self, shards: Shards, k: int):
        self.shards, self.k = shards, k

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.shards.files:
            raise KeyError(name)
        return self.shards.read(name, self.k)

    def __contains__(self, name: object) -> bool:
        return name in self.shards.files

    def __iter__(self) -> Iterator[str]:
        return iter(self.shards.files)

    def __len__(self) -> int:
        return len(self.shards.files)


def is_lazy(vectors: list) -> bool:
    """True when the stage vectors are read on demand (scoring then reads them per tensor)."""
    return any(isinstance(vector, ShardVector) for vector in vectors)


def spills(stages: int, parameters: int, dtype: torch.dtype, above_mb: float) -> bool:
    """Whether K embeddings of ``parameters`` values in ``dtype`` exceed ``above_mb`` MiB."""
    return stages * parameters * dtype.itemsize > above_mb * 2**20
