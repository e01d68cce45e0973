"""``aa``'s streamed embeddings computed in groups of tensors, one call per group
(docs/scaling.md#several-workers): the calls run where ``chunk_map`` runs them (one after
another here, or as Ray tasks), and their chunks are put back in the tensors' order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from auditor.estimators.parallel import ChunkMap, groups, serial_map
from auditor.estimators.propagation.h0_stream import StreamedH0
from auditor.estimators.shards import Shards
from auditor.estimators.workspace import release_freed_memory
from auditor.lineage.models import ModelVersion
from auditor.lineage.sketching.layout import ParamLayout


@dataclass(frozen=True)
class GroupJob:
    """One group's call: plain data (the lineage, where its checkpoints are, the group's
    tensors), so it can travel to another process."""

    version: ModelVersion
    root: str
    layout: ParamLayout  # the group's tensors, in the final model's order
    dtype: torch.dtype
    device: str
    names_at: list[dict[str, str]] | None
    workspace: int | None
    folder: str | None  # spill: write each chunk's K embeddings here
    tag: str


def run_group(job: GroupJob) -> list[tuple[str, slice | None, object]]:
    """(name, rows, the K embeddings or the file holding them) of every chunk of the group."""
    streamed = StreamedH0(job.version, job.root, job.layout, job.dtype, job.device,
                          job.names_at, job.workspace)
    out: list[tuple[str, slice | None, object]] = []
    if job.folder is None:
        for name, per_stage in streamed:
            out.append((name, None, [t.to("cpu") for t in per_stage]))
        return out
    for index, (name, rows, per_stage) in enumerate(streamed.chunks()):
        path = Path(job.folder) / f"{job.tag}-{index:06d}.safetensors"
        save_file({str(k): t.detach().to("cpu").contiguous() for k, t in enumerate(per_stage)},
                  str(path))
        out.append((name, rows, str(path)))
    release_freed_memory()
    return out


def grouped_embeddings(version: ModelVersion, root, layout: ParamLayout, dtype: torch.dtype,
                       device, spill: bool, names_at, workspace: int | None, workers: int,
                       chunk_map: ChunkMap | None) -> list:
    """``streamed_embeddings`` with the tensors split into ``workers`` contiguous groups:
    the same chunks, in the same order, so the same numbers bit for bit."""
    shards = Shards(len(version.stages)) if spill else None
    jobs = [GroupJob(version, str(root), ParamLayout(layout.names[r.start:r.stop],
                                                     layout.shapes[r.start:r.stop],
                                                     layout.sizes[r.start:r.stop]),
                     dtype, str(device), names_at, workspace,
                     None if shards is None else str(shards.folder), f"g{g:03d}")
            for g, r in enumerate(groups(layout.sizes, workers))]
    results = (chunk_map or serial_map)(run_group, jobs)
    if shards is not None:
        for result in results:
            for name, rows, path in result:
                shards.adopt(name, rows, Path(path))
        return shards.vectors()
    vectors: list[dict[str, torch.Tensor]] = [{} for _ in version.stages]
    for result in results:
        for name, _, per_stage in result:
            for k, tensor in enumerate(per_stage):
                vectors[k][name] = tensor.clone()  # its own memory (a worker's result may be a view)
    return vectors
