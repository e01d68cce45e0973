"""Does a stage's model continue the previous stage? Checked when the stage *starts*.

Between two stages the model must be the tensors the previous stage ended with — same names, same
values — unless the stage declares a change (``ParameterChange``): adapters or a head that appear
(``adds``: their initial values are the stage's ``theta_start``), tensors that are dropped
(``removes``), or values a structural change computes (``recomputes``: an adapter merged into its
base weight). Renames are found, not declared: peft moves a base weight ``x.weight`` to
``base_model.model.x.base_layer.weight`` without copying it, so the same storage under a new name
is the same tensor renamed.

Replay follows the declaration: ``enter_stage`` applies the task's ``adapt(model, stage_id)``
(which repeats the structural change, e.g. ``get_peft_model``), then loads the running values
under their new names and the added tensors' recorded initial values.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

import torch

from auditor.errors import EstimatorError, LineageError
from auditor.lineage.checkpoints import Tensors, load_model_state, load_tensors
from auditor.lineage.merges import check_merge, describe_merge, lora_scalings
from auditor.lineage.models import ModelVersion, ParameterChange, Stage


def _storage_key(tensor: torch.Tensor) -> tuple:
    return (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
            tuple(tensor.stride()))


class Snapshot:
    """A stage's end state: value copies (to detect edits), storage keys (to find renames) and
    peft's LoRA scalings (to describe a merge, auditor.lineage.merges)."""

    def __init__(self, stage_id: str, model: torch.nn.Module):
        state = model.state_dict()
        self.stage_id = stage_id
        self.values = {name: t.detach().clone() for name, t in state.items()}
        self.keys = {name: _storage_key(t) for name, t in state.items()}
        self.scalings = lora_scalings(model)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def check_continuation(previous: Snapshot, model: torch.nn.Module, stage_id: str, *,
                       adds: Sequence[str] = (), removes: Sequence[str] = (),
                       recomputes: Sequence[str] = (), adapter: str | None = None
                       ) -> ParameterChange | None:
    """The declared change ``model`` makes to ``previous``, or a one-line LineageError naming
    the first tensor that differs without being declared. None when nothing changed."""
    state = model.state_dict()
    where = f"stage {stage_id!r} does not continue stage {previous.stage_id!r}"
    by_key = {}
    for name, key in previous.keys.items():
        by_key.setdefault(key, []).append(name)
    renamed, added, recomputed = {}, [], []
    for name in state:
        if name in previous.values:
            continue
        old = [n for n in by_key.get(_storage_key(state[name]), [])
               if n not in state and n not in renamed]
        if old:  # a tied tensor has several old names: take the one the new name ends with
            plain = name.replace("base_layer.", "")
            renamed[next((n for n in old if plain.endswith(n)), old[0])] = name
        elif _matches(name, adds):
            added.append(name)
        else:
            raise LineageError(f"{where}: tensor {name!r} appeared without being declared "
                               "(pass adds=[...] naming it or a pattern)")
    moved = set(renamed)
    removed = [n for n in previous.values if n not in state and n not in moved]
    for name in removed:
        if not _matches(name, removes):
            raise LineageError(f"{where}: tensor {name!r} disappeared without being declared "
                               "(pass removes=[...])")
    inverse = {new: old for old, new in renamed.items()}
    for name, tensor in state.items():
        if name in added:
            continue
        before = previous.values[inverse.get(name, name)]
        same = tensor.shape == before.shape and tensor.dtype == before.dtype and torch.equal(
            tensor.detach().to(before.device), before)
        if same:
            continue
        if _matches(name, recomputes):
            recomputed.append(name)
            continue
        raise LineageError(f"{where}: tensor {name!r} was changed outside a recorded stage "
                           "(declare it with recomputes=[...] if a merge computed it)")
    if not (renamed or added or removed or recomputed):
        return None
    # a recomputed tensor must be a merge the estimators can carry (refused here, by name)
    merges = [describe_merge(previous.values, inverse.get(name, name), name, state[name], where,
                             previous.scalings) for name in sorted(recomputed)]
    return ParameterChange(added=sorted(added), renamed=renamed, removed=sorted(removed),
                           recomputed=sorted(recomputed), merges=merges, adapter=adapter)


# -- replay ----------------------------------------------------------------------------------

def adapt_structure(task, model: torch.nn.Module, stage: Stage) -> torch.nn.Module:
    """``model`` with ``stage``'s declared structural change made by the task's ``adapt``."""
    adapt = getattr(task, "adapt", None)
    if adapt is None:
        raise EstimatorError(f"stage {stage.id!r} changed the model's parameters; its task needs "
                             "adapt(model, stage_id) to repeat the change on replay")
    adapted = adapt(model, stage.id)
    return model if adapted is None else adapted


def enter_stage(task, model: torch.nn.Module, stage: Stage, root: Path) -> torch.nn.Module:
    """``model`` (the running values) as ``stage`` starts: its declared change applied."""
    change = stage.changes
    if change is None:
        return model
    running: Tensors = {n: t.detach().clone() for n, t in model.state_dict().items()}
    adapted = adapt_structure(task, model, stage)
    initial = load_tensors(stage.theta_start, root)
    inverse = {new: old for old, new in change.renamed.items()}
    fresh = adapted.state_dict()
    state = {}
    for name in fresh:
        if name in change.added:
            state[name] = initial[name]
        elif name in change.recomputed:
            state[name] = fresh[name].detach().clone()  # the change computed it from the running model
        else:
            source = inverse.get(name, name)
            if source not in running:
                raise EstimatorError(f"stage {stage.id!r}: replaying its change gives tensor "
                                     f"{name!r}, which the recorded change does not explain")
            state[name] = running[source]
    load_model_state(adapted, state, source=f"stage {stage.id!r}'s start")
    return adapted


def structure_index(version: ModelVersion, sha256: str) -> int:
    """The index of the first stage whose parameter set a checkpoint has (-1: the built model)."""
    for index, stage in enumerate(version.stages):
        if stage.theta_start.sha256 == sha256 or stage.theta_end.sha256 == sha256:
            return index
    return len(version.stages) - 1


def build_structure(task, version: ModelVersion, index: int) -> torch.nn.Module:
    """A fresh model with the structure stage ``index`` trains (every change up to it applied)."""
    model = task.build_model()
    for stage in version.stages[:index + 1]:
        if stage.changes is not None:
            model = adapt_structure(task, model, stage)
    return model


def check_declared_changes(version: ModelVersion, root: str | Path) -> None:
    """Check, from the checkpoints, that every declared change explains the difference between
    a stage's start and the previous stage's end (a lineage read from disk is untrusted: a
    declaration must not hide swapped weights). One-line LineageError otherwise."""
    for previous, stage in zip(version.stages, version.stages[1:]):
        change = stage.changes
        if change is None:
            continue
        before = load_tensors(previous.theta_end, root)
        after = load_tensors(stage.theta_start, root)
        where = f"stage {stage.id!r}'s declared change"
        inverse = {new: old for old, new in change.renamed.items()}
        for name in (*change.added, *change.renamed.values(), *change.recomputed):
            if name not in after:
                raise LineageError(f"{where} names {name!r}, which its start checkpoint lacks")
        for name, tensor in after.items():
            if name in change.added:
                continue
            source = inverse.get(name, name)
            if source not in before:
                raise LineageError(f"{where} does not explain tensor {name!r} (not in stage "
                                   f"{previous.id!r}'s end checkpoint, not declared added)")
            if name not in change.recomputed and not torch.equal(tensor, before[source]):
                raise LineageError(f"{where} does not explain tensor {name!r}: its value differs "
                                   f"from stage {previous.id!r}'s end")
        for merge in change.merges:
            check_merge(merge, before, after[merge.weight], where)
        kept = set(change.renamed) | set(change.removed) | set(after)
        gone = sorted(set(before) - kept)
        if gone:
            raise LineageError(f"{where} does not explain the missing tensor {gone[0]!r}")
