"""Stage embeddings on disk: safetensors plus a sha256, so a new behaviour costs one gradient.

The file holds one float64 tensor per (stage, parameter) named ``"{k}/{name}"`` and the
embedding's header (model, version, stages, estimator, config hash, ...) as safetensors metadata.
Loading verifies the sha256 first (``CheckpointError`` when the file changed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from auditor.errors import CheckpointError, EstimatorError
from auditor.estimators.base import EstimatorState, StageEmbeddings
from auditor.hashing import sha256_file

_HEADER = ("model", "version", "stages", "stage_kinds", "convention", "estimator",
           "estimator_version", "config_hash", "runtime_s")


@dataclass(frozen=True)
class EmbeddingsFile:
    path: Path
    sha256: str


@dataclass
class LoadedState(EstimatorState):
    """Embeddings read back from a file: where from, and the sha256 checked."""

    source: str
    sha256: str


def save_embeddings(embeddings: StageEmbeddings, path: str | Path) -> EmbeddingsFile:
    """Write ``embeddings`` to ``path`` (atomically); returns the file and its sha256."""
    if embeddings.state is not None and not embeddings.state.embeddings:
        raise EstimatorError(f"{embeddings.estimator} ran in reverse mode and has no stage "
                             "embeddings to save: run it with mode='forward'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{k}/{name}": t.detach().to("cpu", torch.float64).contiguous()
               for k, vector in enumerate(embeddings.vectors) for name, t in vector.items()}
    header = {key: getattr(embeddings, key) for key in _HEADER}
    # the state's portable keys, under the name files have carried since the first release
    header["portable_extra"] = sorted(embeddings.state.portable() if embeddings.state else [])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"auditor.embeddings": json.dumps(header)})
    os.replace(tmp, path)
    digest = sha256_file(path)
    path.with_name(path.name + ".sha256").write_text(digest + "\n")
    return EmbeddingsFile(path, digest)


def load_embeddings(path: str | Path, sha256: str | None = None) -> StageEmbeddings:
    """Read embeddings back after checking their sha256 (given, or from the ``.sha256`` file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"stage embeddings {path} are missing")
    expected = sha256 or _sidecar(path)
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointError(f"stage embeddings {path} do not match their sha256 "
                              f"(expected {expected[:16]}…, file has {actual[:16]}…)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads(handle.metadata()["auditor.embeddings"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"stage embeddings {path} are unreadable: {exc}") from exc
    vectors: list[dict[str, torch.Tensor]] = [{} for _ in header["stages"]]
    for key, tensor in tensors.items():
        k, _, name = key.partition("/")
        vectors[int(k)][name] = tensor
    header.pop("portable_extra", None)
    header["stages"], header["stage_kinds"] = tuple(header["stages"]), tuple(header["stage_kinds"])
    return StageEmbeddings(vectors=vectors, state=LoadedState(str(path), actual), **header)


def _sidecar(path: Path) -> str:
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise CheckpointError(f"stage embeddings {path} have no recorded sha256 ({sidecar.name})")
    return sidecar.read_text().strip()
