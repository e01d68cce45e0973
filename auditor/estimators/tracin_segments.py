"""``tracin``'s segments and stage embeddings kept on disk (docs/scaling.md#what-streams).

TracIn holds, per segment, its start point θ_c (the model's tensors) and its η-weighted update
sum v_c (a flat float64 vector over the union layout); its stage embeddings are the sums of
each stage's v_c. Held in memory they are 2 × checkpoints × K model copies and as many float64
vectors. ``SegmentStore`` writes each θ_c when its segment starts and each v_c when it ends
(one safetensors file each, in a private temporary folder removed with the store), and each
stage's embedding when its last segment ends: the memory is one running v_c and one running
stage sum, whatever K. Reading back gives the same bits (safetensors stores them exactly), and
scoring does the same float64 operations in the same order, so the effects are unchanged bit
for bit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


class SegmentStore:
    def __init__(self, stages: int):
        self._folder = tempfile.TemporaryDirectory(prefix="auditor-tracin-")
        self.paths: list[list[tuple[Path, Path | None]]] = [[] for _ in range(stages)]
        self.embeddings: list[StageFile | None] = [None] * stages
        self._count = 0

    def _path(self, kind: str) -> Path:
        self._count += 1
        return Path(self._folder.name) / f"{kind}-{self._count:06d}.safetensors"

    def start(self, k: int, params: dict[str, torch.Tensor]) -> None:
        """A segment of stage ``k`` begins at ``params`` (θ_c)."""
        path = self._path("theta")
        save_file({n: t.detach().to("cpu").contiguous() for n, t in params.items()}, str(path))
        self.paths[k].append((path, None))

    def finish(self, k: int, vector: torch.Tensor) -> None:
        """The running segment of stage ``k`` ends with update sum ``vector`` (v_c: raw
        float64, read back by ``torch.from_file`` into a fresh, aligned allocation)."""
        path = self._path("v").with_suffix(".f64")
        vector.contiguous().numpy().tofile(path)
        self.paths[k][-1] = (self.paths[k][-1][0], path)

    def embedding(self, k: int, tensors: dict[str, torch.Tensor]) -> None:
        """Stage ``k``'s embedding (by the final model's names)."""
        path = self._path("embedding")
        save_file({n: t.contiguous() for n, t in tensors.items()}, str(path))
        self.embeddings[k] = StageFile(self, path, tuple(tensors))

    def segments(self, k: int) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """(θ_c, v_c) of stage ``k``'s segments, one at a time."""
        for theta, vector in self.paths[k]:
            # a fresh allocation, aligned as the in-memory vector was (a vectorised dot
            # product can round differently on a vector read at an unaligned offset)
            size = vector.stat().st_size // 8
            yield load_file(str(theta)), torch.from_file(str(vector), size=size,
                                                         dtype=torch.float64)

    def count(self, k: int) -> int:
        return len(self.paths[k])


class StageFile(Mapping):
    """One stage's embedding by parameter name, read from its file on access (the store, and
    so the file, lives as long as this mapping)."""

    def __init__(self, store: SegmentStore, path: Path, names: tuple[str, ...]):
        self.store, self.path, self.names = store, path, names

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(name)
        with safe_open(str(self.path), framework="pt") as handle:
            return handle.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)
