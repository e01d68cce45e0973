"""``replay``'s bookkeeping on disk: the counterfactual models θ_T^{(−k)} and the stage
displacements e_k = θ_T − θ_T^{(−k)}, so that its memory does not grow with K
(docs/scaling.md#replay).

Once stage k's counterfactual is trained, its parameters and buffers are written as
safetensors files (tensors grouped up to the workspace's bytes per file) in a private
temporary folder, and the model keeps only its structure: every parameter and buffer is
emptied in place (``tensor.data``), so tied weights stay tied and the module, its mode and
its flags stay the very object training made. ``CounterfactualModels.loaded()`` fills one
model back at a time, bit for bit, and empties it again after use. The displacement is
computed and written one tensor at a time (``DisplacementFiles``); ``StageVector`` reads it
back by name on access, like the streamed estimators' ``ShardVector``. The folder is removed
when its owner is collected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path

import torch
from safetensors.torch import safe_open, save_file

from auditor.lineage.checkpoints import LazyCheckpoint
from auditor.lineage.sketching.layout import ParamLayout


class SpillFolder:
    """A private temporary folder of safetensors files, each a group of named tensors of at
    most ``group_bytes`` bytes (one tensor larger than that is a file of its own)."""

    def __init__(self, group_bytes: int, prefix: str = "auditor-replay-"):
        self.group_bytes = max(1, group_bytes)
        self._folder = tempfile.TemporaryDirectory(prefix=prefix)
        self._count = 0

    @property
    def folder(self) -> Path:
        return Path(self._folder.name)

    def write(self, tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, Path]:
        """Write ``(name, tensor)`` pairs, computed one at a time; name → the file holding it."""
        where: dict[str, Path] = {}
        group: dict[str, torch.Tensor] = {}
        size = 0
        for name, tensor in tensors:
            group[name] = tensor.detach().to("cpu").contiguous()
            size += group[name].numel() * group[name].element_size()
            if size >= self.group_bytes:
                where.update(self._flush(group))
                group, size = {}, 0
        if group:
            where.update(self._flush(group))
        return where

    def _flush(self, group: dict[str, torch.Tensor]) -> dict[str, Path]:
        path = self.folder / f"{self._count:06d}.safetensors"
        self._count += 1
        save_file(group, str(path))
        return dict.fromkeys(group, path)


def read_tensor(path: Path, name: str) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name)


def model_tensors(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``model`` once (tied ones under their first name)."""
    return chain(model.named_parameters(), model.named_buffers())


def _empty(tensor: torch.Tensor) -> None:
    tensor.data = torch.empty(0, dtype=tensor.dtype, device=tensor.device)


class CounterfactualModels:
    """θ_T^{(−k)} by stage index: in memory, or (``folder`` given) on disk with only the
    module's structure kept."""

    def __init__(self, folder: SpillFolder | None = None):
        self.folder = folder
        self.models: dict[int, torch.nn.Module] = {}
        self._files: dict[int, dict[str, Path]] = {}
        self._layouts: dict[int, dict[str, tuple[torch.device, tuple[int, ...]]]] = {}

    def keep(self, k: int, model: torch.nn.Module) -> None:
        self.models[k] = model
        if self.folder is None:
            return
        # a copy of each (one file group at a time): tensors sharing storage are written apart
        self._files[k] = self.folder.write(
            (name, t.detach().to("cpu").clone(memory_format=torch.contiguous_format))
            for name, t in model_tensors(model))
        self._layouts[k] = {name: (t.device, t.stride()) for name, t in model_tensors(model)}
        for param in model.parameters():
            param.grad = None
        for _, tensor in model_tensors(model):
            _empty(tensor)

    def __len__(self) -> int:
        return len(self.models)

    def loaded(self) -> Iterator[tuple[int, torch.nn.Module]]:
        """(k, θ_T^{(−k)}) in stage order, one model's tensors in memory at a time."""
        for k in sorted(self.models):
            model = self.models[k]
            if self.folder is None:
                yield k, model
                continue
            named = list(model_tensors(model))
            try:
                for name, tensor in named:
                    tensor.data = _placed(read_tensor(self._files[k][name], name),
                                          *self._layouts[k][name])
                yield k, model
            finally:
                for _, tensor in named:
                    _empty(tensor)


def _placed(tensor: torch.Tensor, device: torch.device,
            stride: tuple[int, ...]) -> torch.Tensor:
    """``tensor`` on ``device`` with the strides it was trained with (channels-last kept)."""
    if tensor.stride() == stride and tensor.device == device:
        return tensor
    placed = torch.empty_strided(tensor.shape, stride, dtype=tensor.dtype, device=device)
    return placed.copy_(tensor)


class DisplacementFiles:
    """The stage displacements, written one tensor at a time (stages not replayed: zeros)."""

    def __init__(self, layout: ParamLayout, folder: SpillFolder | None):
        self.layout, self.folder = layout, folder
        self._stages: dict[int, dict[str, Path] | dict[str, torch.Tensor]] = {}

    def add(self, k: int, final: LazyCheckpoint | None, model: torch.nn.Module) -> None:
        """e_k = θ_T − θ_T^{(−k)} in float64, tensor by tensor (a name the model or the final
        checkpoint lacks counts as zeros there, as ``ParamLayout.flatten`` has it)."""
        params = dict(model.named_parameters())
        pieces = ((name, _float64(final, name, shape) - _as_float64(params.get(name), shape))
                  for name, shape in zip(self.layout.names, self.layout.shapes))
        self._stages[k] = (self.folder.write(pieces) if self.folder is not None
                           else dict(pieces))

    def vectors(self, stages: int) -> list[Mapping[str, torch.Tensor]]:
        """Stage k's displacement by name: read on access when spilled, else a dict."""
        if self.folder is not None:
            return [StageVector(self, k) for k in range(stages)]
        return [{name: self.read(k, name) for name in self.layout.names} for k in range(stages)]

    def read(self, k: int, name: str) -> torch.Tensor:
        stage = self._stages.get(k)
        if stage is None:
            return torch.zeros(self.layout.shapes[self.layout.names.index(name)],
                               dtype=torch.float64)
        found = stage[name]
        return found if isinstance(found, torch.Tensor) else read_tensor(found, name)


def _as_float64(tensor: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    if tensor is None:
        return torch.zeros(shape, dtype=torch.float64)
    return tensor.detach().reshape(shape).to("cpu", torch.float64)


def _float64(final: LazyCheckpoint | None, name: str, shape: torch.Size) -> torch.Tensor:
    return _as_float64(None if final is None else final.get(name), shape)


class StageVector(Mapping):
    """Stage k's displacement by parameter name, read from its file on access."""

    def __init__(self, files: DisplacementFiles, k: int):
        self.files, self.k = files, k

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.files.layout.names:
            raise KeyError(name)
        return self.files.read(self.k, name)

    def __contains__(self, name: object) -> bool:
        return name in self.files.layout.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.files.layout.names)

    def __len__(self) -> int:
        return len(self.files.layout.names)
