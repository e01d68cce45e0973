"""Stage embeddings kept on disk one chunk of a parameter tensor at a time (docs/scaling.md).

A streamed estimator hands the K embeddings of each tensor, or of a range of its rows, to
``Shards.add``; they are written as one safetensors file per chunk (keys ``"0"`` … ``"K-1"``)
in a private temporary folder, removed when the ``Shards`` object is collected.
``Shards.vectors()`` gives the K stage vectors as read-only mappings by parameter name that read
a tensor (memory-mapped) only when asked for it, and ``Shards.blocks(name)`` the K × rows
blocks one chunk at a time, so neither the estimator nor scoring ever holds K whole-model
vectors, nor K copies of the largest tensor.
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
        self.files: dict[str, list[tuple[slice | None, Path]]] = {}  # name -> its chunks
        self._count = 0

    @property
    def folder(self) -> Path:
        return Path(self._folder.name)

    def add(self, name: str, tensors: list[torch.Tensor], rows: slice | None = None) -> None:
        """The K embeddings of tensor ``name`` (``rows``: of that range of its rows; chunks of
        one tensor are added in order)."""
        path = self.folder / f"{self._count:06d}.safetensors"
        self._count += 1
        save_file({str(k): t.detach().to("cpu").contiguous() for k, t in enumerate(tensors)},
                  str(path))
        self.files.setdefault(name, []).append((rows, path))

    def adopt(self, name: str, rows: slice | None, path: Path) -> None:
        """A chunk file another process wrote into ``folder`` (``Shards.add``'s layout)."""
        self.files.setdefault(name, []).append((rows, path))

    def read(self, name: str, k: int) -> torch.Tensor:
        parts = []
        for _, path in self.files[name]:
            with safe_open(str(path), framework="pt") as handle:
                parts.append(handle.get_tensor(str(k)))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def blocks(self, name: str) -> Iterator[tuple[slice | None, list[torch.Tensor]]]:
        """(rows, the K embeddings of those rows) of tensor ``name``, one chunk at a time."""
        for rows, path in self.files[name]:
            with safe_open(str(path), framework="pt") as handle:
                yield rows, [handle.get_tensor(str(k)) for k in range(self.stages)]

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


def spills(stages: int, parameters: int, dtype: torch.dtype, above_mb: float | None,
           workspace: int) -> bool:
    """Whether K embeddings of ``parameters`` values in ``dtype`` exceed ``above_mb`` MiB, or
    when None the ``workspace`` (bytes): held in memory they would be working memory too."""
    limit = workspace if above_mb is None else above_mb * 2**20
    return stages * parameters * dtype.itemsize > limit
