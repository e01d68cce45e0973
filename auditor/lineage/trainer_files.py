"""The files trainers write, read as auditor's checkpoints (docs/lineage-import.md).

- **Native optimizer state** (``torch.save(optimizer.state_dict())``, the Trainer's
  ``optimizer.pt``): read with ``weights_only=True`` and flattened to auditor's per-parameter-name
  form (``"{name}.exp_avg"``, ...). The names come from the file's ``param_names`` (an optimizer
  built over ``model.named_parameters()``); a file without them is refused, or converted first
  with ``name_optimizer_state(state, model)``.
- **Hugging Face ``save_pretrained`` folders**: ``model.safetensors``, sharded safetensors
  with ``model.safetensors.index.json``, or ``pytorch_model.bin``. A single safetensors file is
  used as it is; the other forms are consolidated into one safetensors file (named by content,
  under ``checkpoints/`` beside the lineage file), since a checkpoint is one hashed file.
- **Tied weights dropped** (``save_pretrained`` omits ``lm_head.weight`` when it is tied to the
  input embeddings): ``fill_tied`` restores them from the tensor they are tied to in the model,
  and ``unique_numel`` counts a tensor stored under two names once.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from auditor.errors import CheckpointError

Tensors = dict[str, torch.Tensor]
INDEX_FILE = "model.safetensors.index.json"


# -- optimizer state ----------------------------------------------------------------------------

def is_native_optimizer_state(state: Any) -> bool:
    return isinstance(state, dict) and set(state) == {"state", "param_groups"}


def flatten_native_optimizer(state: dict, path: Path | str) -> Tensors:
    """A torch optimizer ``state_dict()`` as auditor's flat, name-keyed optimizer state."""
    names: dict[int, str] = {}
    for group in state["param_groups"]:
        if not isinstance(group, dict) or "params" not in group:
            raise CheckpointError(f"optimizer state {path}: a parameter group has no 'params'")
        ids, given = group["params"], group.get("param_names")
        if given is None:
            raise CheckpointError(
                f"optimizer state {path} does not name its parameters: build the optimizer over "
                "model.named_parameters(), or convert the file with "
                "auditor.lineage.trainer_files.name_optimizer_state(state, model)")
        if len(given) != len(ids):
            raise CheckpointError(f"optimizer state {path}: param_names and params differ in "
                                  "length")
        names.update({int(i): str(n) for i, n in zip(ids, given)})
    flat: Tensors = {}
    for index, entries in state["state"].items():
        if int(index) not in names:
            raise CheckpointError(f"optimizer state {path}: state for unknown parameter {index}")
        for key, value in entries.items():
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            flat[f"{names[int(index)]}.{key}"] = value
    return flat


def name_optimizer_state(state: dict, model: torch.nn.Module) -> dict:
    """``state`` with ``param_names`` added, for an optimizer built over ``model.parameters()``
    in their order (torch numbers them in the order of its groups)."""
    named = [name for name, _ in model.named_parameters()]
    out = {"state": state["state"], "param_groups": []}
    for group in state["param_groups"]:
        ids = group["params"]
        if max(ids, default=-1) >= len(named):
            raise CheckpointError("the optimizer holds more parameters than the model has")
        out["param_groups"].append({**group, "param_names": [named[i] for i in ids]})
    return out


# -- save_pretrained folders -------------------------------------------------------------------

def pretrained_file(folder: Path) -> tuple[Path, str] | None:
    """The single file a save_pretrained folder's weights are in, with its format, or None
    when they must be consolidated (sharded safetensors)."""
    if (folder / "model.safetensors").is_file():
        return folder / "model.safetensors", "safetensors"
    if (folder / INDEX_FILE).is_file():
        return None
    if (folder / "pytorch_model.bin").is_file():
        return folder / "pytorch_model.bin", "torch"
    raise CheckpointError(f"checkpoint folder {folder} holds no model.safetensors, "
                          f"{INDEX_FILE} or pytorch_model.bin")


def read_sharded(folder: Path) -> Tensors:
    """Every tensor of a sharded safetensors checkpoint, after checking its index."""
    from safetensors.torch import load_file

    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        weight_map = index["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder / INDEX_FILE} is not a safetensors index: {exc}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{folder / INDEX_FILE} maps no tensors")
    tensors: Tensors = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = (folder / str(shard)).resolve()
        if shard_path.parent != folder.resolve() or not shard_path.is_file():
            raise CheckpointError(f"{folder / INDEX_FILE} names a shard {shard!r} that is not a "
                                  "file in the folder")
        try:
            tensors.update(load_file(str(shard_path)))
        except Exception as exc:  # safetensors raises several types on junk
            raise CheckpointError(f"shard {shard_path} is not readable safetensors: {exc}") \
                from None
    missing = sorted(set(weight_map) - set(tensors))
    if missing:
        raise CheckpointError(f"{folder / INDEX_FILE} lists tensors no shard holds: {missing[:3]}")
    return {name: tensors[name] for name in weight_map}


def consolidate(tensors: Tensors, out_folder: Path) -> Path:
    """Write ``tensors`` as one safetensors file named by content; return its path."""
    from safetensors.torch import save_file

    out_folder.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    tmp = out_folder / ".consolidating.tmp"
    save_file(plain, str(tmp))
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    final = out_folder / f"imported-{digest[:16]}.safetensors"
    tmp.replace(final)
    return final


# -- tied weights ------------------------------------------------------------------------------

def fill_tied(expected: Tensors, tensors: Tensors) -> Tensors:
    """``tensors`` plus the tied tensors a save dropped: a name the model expects that is
    missing is filled from a present name sharing its storage in the model."""
    missing = [n for n in expected if n not in tensors]
    if not missing:
        return tensors
    by_storage: dict[tuple, list[str]] = {}
    for name, tensor in expected.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        by_storage.setdefault(key, []).append(name)
    filled = dict(tensors)
    for names in by_storage.values():
        present = [n for n in names if n in tensors]
        for name in names:
            if name not in filled and present:
                filled[name] = tensors[present[0]]
    return filled


def unique_numel(tensors: Tensors) -> int:
    """Floating-point scalars in ``tensors``, a tensor stored under two names counted once:
    names sharing storage (torch files keep ties), or equal in shape and every value when the
    values are not all the same (a constant tensor — a fresh norm's ones — is no evidence of a
    tie; random or trained values never coincide by chance)."""
    seen: set = set()
    total = 0
    for tensor in tensors.values():
        if not tensor.is_floating_point():
            continue
        storage = ("storage", tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                   tuple(tensor.shape))
        keys = {storage}
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        if flat.numel() > 1 and not bool((flat == flat[0]).all()):
            keys.add(("values", tuple(tensor.shape), str(tensor.dtype),
                      hashlib.sha256(flat.view(torch.uint8).numpy().tobytes()).hexdigest()))
        if keys & seen:
            continue
        seen |= keys
        total += tensor.numel()
    return total
